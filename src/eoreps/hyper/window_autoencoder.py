"""The windowed hyper-representation model (SANE-style): a transformer autoencoder over windows of ``K``
consecutive weight tokens.

::

    window (B, K, width) --Linear--> (B, K, d) + pos(layer) + pos(unit) + pos(chunk) [+ MLP(stats)]
    [comp; window] --TransformerEncoder--> out[:, 0] --Linear--> z (B, latent)      # one code per window
    z --Linear--> (B, 1, d) + decoder positions --TransformerEncoder--> --Linear--> (B, K, width)
    z --MLP--> projection (B, proj)                                                 # for NT-Xent

``latent="tokens"`` (SANE's bottleneck) gives every weight token its own code instead of the compression
token's one: ``out[:, 1:] --Linear--> (B, K, latent)``, and each token's code enters the decoder at that
token's position (``(B, K, latent) --Linear--> (B, K, d) + decoder positions --TransformerEncoder-->
--Linear--> (B, K, width)``); the window code ``z`` (contrastive projection, model embedding) is the mean of
the token codes. The compression token then feeds no loss term, so read such a model with
``window_readout: tokens``.

A step only ever sees ``K`` tokens, so its memory does not grow with the model; a whole model is embedded
as the mean of the codes of windows covering all its tokens (:mod:`eoreps.hyper.window_representation`).
The three position tables are sized by the tokenizer (layers, widest layer, longest row), the sizes of
:class:`~eoreps.hyper.autoencoder.ModelConfig` and the transformer stacks are those of the per-neuron model.
"""

from __future__ import annotations

import torch
from torch import nn

from eoreps.hyper.autoencoder import ModelConfig, add_core


def chunk_statistics(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, K, W) tokens and their mask of real entries -> (B, K, 5): mean, std, mean |w|, max and min of
    each token's real entries (a linear embedding can form weighted sums, not spreads or extremes)."""
    m = mask.to(tokens.dtype)
    k = m.sum(-1).clamp_min(1.0)
    mean = (tokens * m).sum(-1) / k
    var = ((tokens - mean[..., None]) ** 2 * m).sum(-1) / k
    absmean = (tokens.abs() * m).sum(-1) / k
    big = torch.finfo(tokens.dtype).max
    mx = tokens.masked_fill(~mask, -big).amax(-1)
    mn = tokens.masked_fill(~mask, big).amin(-1)
    return torch.stack([mean, var.clamp_min(0).sqrt(), absmean, mx, mn], dim=-1)


def _pool(codes: torch.Tensor) -> torch.Tensor:
    """Window codes (B, latent) as they are; token codes (B, K, latent) -> their mean (B, latent)."""
    return codes if codes.dim() == 2 else codes.mean(1)


class _Positions(nn.Module):
    """Sum of three learned embeddings of a (..., 3) position (layer, unit, chunk)."""

    def __init__(self, sizes: tuple[int, int, int], d: int) -> None:
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(int(n), d) for n in sizes)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        return sum(t(pos[..., i]) for i, t in enumerate(self.tables))  # type: ignore[return-value]


LATENTS = ("window", "tokens")
"""Where the windowed autoencoder's bottleneck sits: one code per window (the compression token) or one per
weight token (SANE); ``window_latent`` in ``hyper.json``."""


class WindowAutoencoder(nn.Module):
    """Encoder (window -> z), decoder (z, positions -> window) and projection head (z -> p).

    ``width``: token width; ``table_sizes``: (layers, units, chunks) of the tokenizer; ``latent``: one of
    :data:`LATENTS`.
    """

    def __init__(self, width: int, table_sizes: tuple[int, int, int], cfg: ModelConfig | None = None,
                 latent: str = "window") -> None:
        super().__init__()
        self.cfg = cfg or ModelConfig()
        d = self.cfg.d_model
        if d % self.cfg.n_heads:
            raise ValueError(f"d_model {d} must be divisible by n_heads {self.cfg.n_heads}")
        if latent not in LATENTS:
            raise ValueError(f"latent {latent!r} must be one of {', '.join(LATENTS)}")
        self.latent = latent
        self.width = int(width)
        self.embed = nn.Linear(width, d)
        if self.cfg.token_stats:
            self.stat_embed = nn.Sequential(nn.Linear(5, d), nn.GELU(), nn.Linear(d, d))
        self.pos = _Positions(table_sizes, d)
        self.dec_pos = _Positions(table_sizes, d)
        add_core(self, self.cfg, width)

    def _encoder_input(self, tokens: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.pos(pos)
        if self.cfg.token_stats:
            x = x + self.stat_embed(chunk_statistics(tokens, mask))
        return torch.cat([self.comp.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)

    def _blocks(self, tokens: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """-> (the last block's output (B, 1 + K, d), every block's output (B, 1 + K, d) in order)."""
        x = self._encoder_input(tokens, pos, mask)
        outs = []
        for block in self.encoder.layers:
            x = block(x)
            outs.append(x)
        return x, outs

    def encode_blocks(self, tokens: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, W) standardised tokens, (B, K, 3) positions, (B, K, W) mask -> ``(z (B, latent),
        blocks (B, enc_layers * d))``: the compression token after every encoder block (the per-neuron
        model's readout)."""
        x, outs = self._blocks(tokens, pos, mask)
        return self._window_code(self.encoder.norm(x)), torch.cat([o[:, 0] for o in outs], dim=-1)

    def encode_tokens(self, tokens: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`encode_blocks` plus every weight token's output after every encoder block, (B, K,
        enc_layers * d) (the compression token left out): for SANE-style readouts that average token
        embeddings instead of reading the compression token."""
        x, outs = self._blocks(tokens, pos, mask)
        blocks = torch.cat([o[:, 0] for o in outs], dim=-1)
        return self._window_code(self.encoder.norm(x)), blocks, torch.cat([o[:, 1:] for o in outs], dim=-1)

    def _codes(self, h: torch.Tensor) -> torch.Tensor:
        """Encoder output (B, 1 + K, d), final norm applied -> the bottleneck: (B, latent) with
        ``latent="window"``, (B, K, latent) token codes with ``"tokens"``."""
        return self.to_latent(h[:, 0] if self.latent == "window" else h[:, 1:])

    def _window_code(self, h: torch.Tensor) -> torch.Tensor:
        """Encoder output (B, 1 + K, d), normed -> (B, latent) window codes (token codes: their mean)."""
        return _pool(self._codes(h))

    def encode(self, tokens: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, K, W) -> (B, latent) window codes."""
        return self._window_code(self.encoder(self._encoder_input(tokens, pos, mask)))

    def decode(self, z: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """(B, latent) window codes or (B, K, latent) token codes, (B, K, 3) positions -> (B, K, W)
        reconstructed standardised tokens (a window code is given to every token)."""
        h = self.from_latent(z)
        h = h[:, None, :] if h.dim() == 2 else h  # (B, 1 or K, d)
        return self.to_tokens(self.decoder(h + self.dec_pos(pos)))

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent) -> (B, proj) projections for the contrastive loss."""
        return self.projection(z)

    def forward(self, tokens: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> ``(z (B, latent), reconstruction (B, K, W), projection (B, proj))``; with token codes the
        reconstruction decodes each token from its own code, ``z`` is their mean."""
        c = self._codes(self.encoder(self._encoder_input(tokens, pos, mask)))  # (B, latent) | (B, K, latent)
        z = _pool(c)
        return z, self.decode(c, pos), self.project(z)
