"""The windowed hyper-representation model (SANE-style): a transformer autoencoder over windows of ``K``
consecutive weight tokens.

::

    window (B, K, width) --Linear--> (B, K, d) + pos(layer) + pos(unit) + pos(chunk) [+ MLP(stats)]
    [comp; window] --TransformerEncoder--> out[:, 0] --Linear--> z (B, latent)      # one code per window
    z --Linear--> (B, 1, d) + decoder positions --TransformerEncoder--> --Linear--> (B, K, width)
    z --MLP--> projection (B, proj)                                                 # for NT-Xent

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


class _Positions(nn.Module):
    """Sum of three learned embeddings of a (..., 3) position (layer, unit, chunk)."""

    def __init__(self, sizes: tuple[int, int, int], d: int) -> None:
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(int(n), d) for n in sizes)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        return sum(t(pos[..., i]) for i, t in enumerate(self.tables))  # type: ignore[return-value]


class WindowAutoencoder(nn.Module):
    """Encoder (window -> z), decoder (z, positions -> window) and projection head (z -> p).

    ``width``: token width; ``table_sizes``: (layers, units, chunks) of the tokenizer.
    """

    def __init__(self, width: int, table_sizes: tuple[int, int, int], cfg: ModelConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or ModelConfig()
        d = self.cfg.d_model
        if d % self.cfg.n_heads:
            raise ValueError(f"d_model {d} must be divisible by n_heads {self.cfg.n_heads}")
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
        return self.to_latent(self.encoder.norm(x)[:, 0]), torch.cat([o[:, 0] for o in outs], dim=-1)

    def encode_tokens(self, tokens: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`encode_blocks` plus every weight token's output after every encoder block, (B, K,
        enc_layers * d) (the compression token left out): for SANE-style readouts that average token
        embeddings instead of reading the compression token."""
        x, outs = self._blocks(tokens, pos, mask)
        z = self.to_latent(self.encoder.norm(x)[:, 0])
        return z, torch.cat([o[:, 0] for o in outs], dim=-1), torch.cat([o[:, 1:] for o in outs], dim=-1)

    def encode(self, tokens: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, K, W) -> (B, latent) window codes."""
        return self.to_latent(self.encoder(self._encoder_input(tokens, pos, mask))[:, 0])

    def decode(self, z: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """(B, latent) codes and (B, K, 3) positions -> (B, K, W) reconstructed standardised tokens."""
        return self.to_tokens(self.decoder(self.from_latent(z)[:, None, :] + self.dec_pos(pos)))

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent) -> (B, proj) projections for the contrastive loss."""
        return self.projection(z)

    def forward(self, tokens: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> ``(z (B, latent), reconstruction (B, K, W), projection (B, proj))``."""
        z = self.encode(tokens, pos, mask)
        return z, self.decode(z, pos), self.project(z)
