"""A windowed representation on disk (``hyper fit --tokenizer window``) and what it does.

Same directory layout as the per-neuron representation (:mod:`eoreps.hyper.representation`); ``hyper.json``
adds ``tokenizer: "window"``, ``window`` and ``window_tokenizer`` (parameter order, token width, permutable
chains), ``model.safetensors`` holds the :class:`WindowAutoencoder` and the per-tensor scaler (P,).

* **Embedding** a model: the codes of the windows of :meth:`WindowTokenizer.window_starts` (stride ``K``,
  the last flush with the end), encoded ``batch_size`` windows at a time; ``z`` is their mean, the block
  readout (``learned`` in ``hyper evaluate``) their mean per layer (``window_readout`` in ``hyper.json``,
  default ``layer``; ``mean``: over all windows), which keeps where a code came from; ``tokens`` reads the
  per-layer means of the encoder's token outputs instead (SANE's readout, which keeps more of each layer);
  ``tokens-spread`` adds their per-layer mean absolute value (the spread a mean loses).
  Memory is the flat weights, their tokens and one batch of windows: a ResNet-18 (11.2 M parameters) in
  well under 2 GB.
* **Generating**: a model's code for sampling is the sequence of its window codes (n_windows x latent,
  flattened); decoding runs the decoder window by window and writes each window's tokens in order (the
  last, overlapping window last), then inverts the scaler and the tokenisation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from eoreps.errors import DataError
from eoreps.hyper.align import match
from eoreps.hyper.augment import Permuter
from eoreps.hyper.autoencoder import ModelConfig
from eoreps.hyper.representation import Representation
from eoreps.hyper.tokens import Tokenizer
from eoreps.hyper.window_autoencoder import LATENTS, WindowAutoencoder
from eoreps.hyper.window_tokens import TensorScaler, WindowTokenizer


def _neuron_tokenizer(param_order: list[tuple[str, tuple[int, ...]]]) -> Tokenizer | None:
    """The per-neuron tokenizer of the architecture when it has one (layer-list CNNs; the weight-matched
    average of ``hyper sample`` needs it), else None."""
    try:
        return Tokenizer(param_order)
    except DataError:
        return None


READOUTS = ("layer", "mean", "tokens", "tokens-spread")
"""``window_readout`` of ``hyper.json``: the block readout per layer, over all windows, the per-layer means
of the token outputs (:meth:`WindowRepresentation.token_layer_means`), or those means with the per-layer mean
absolute values (:meth:`WindowRepresentation.token_layer_moments`, statistics 0 and 2)."""

SPREAD_MOMENTS = (0, 2)
"""The statistics of :meth:`WindowRepresentation.token_layer_moments` the ``tokens-spread`` readout keeps
(mean and mean absolute value), per layer in this order."""

TOKEN_READOUTS = {"tokens": (0,), "tokens-spread": SPREAD_MOMENTS}
"""The readouts of the token outputs and the per-layer statistics each keeps (0: mean, 1: standard
deviation, 2: mean absolute value; :meth:`WindowRepresentation.token_layer_moments`)."""


def layer_readout_weights(tok: WindowTokenizer, starts: list[int]) -> torch.Tensor:
    """(n_layers, n_windows) averaging weights: row ``l`` averages the windows that start in the ``l``-th
    layer (of those where some window starts), so a per-layer readout keeps where in the model a code came
    from; its size grows with the layers, not with the windows."""
    layer_of = tok.positions[torch.tensor(starts), 0]
    rows = torch.stack([(layer_of == li).float() for li in sorted(set(layer_of.tolist()))])
    return rows / rows.sum(1, keepdim=True)


class WindowRepresentation(Representation):
    """Window tokenizer + scaler + :class:`WindowAutoencoder` (eval mode), with the per-neuron
    :class:`Representation` interface (``embed``, ``embed_blocks``, ``codes``, ``decode_codes``, ...)."""

    def __init__(self, meta: dict[str, Any], tokenizer: WindowTokenizer, scaler: TensorScaler,
                 net: WindowAutoencoder, window: int, root: Path | None = None,
                 reference: torch.Tensor | None = None) -> None:
        super().__init__(meta, _neuron_tokenizer(tokenizer.param_order), scaler, net, root,  # type: ignore
                         reference)
        self.window_tokenizer, self.window = tokenizer, int(window)
        self.starts = tokenizer.window_starts(self.window)
        # representations fitted before the key existed were evaluated with the mean: keep that
        self.readout = str(meta.get("window_readout", "mean"))
        if self.readout not in READOUTS:
            raise DataError(f"{self._meta_path()}: window_readout '{self.readout}' is not one of "
                            f"{', '.join(READOUTS)}; fix hyper.json")
        self.readout_weights = layer_readout_weights(tokenizer, self.starts)

    def _meta_path(self) -> Path | str:
        """Where ``hyper.json`` is, for error messages."""
        return (self.root / "hyper.json") if self.root else "hyper.json"

    @property
    def blocks_dim(self) -> int:
        """Size of :meth:`embed_blocks`' second output."""
        cfg = self.net.cfg
        if self.readout in TOKEN_READOUTS:
            groups = len(self.window_tokenizer.layers) * len(TOKEN_READOUTS[self.readout])
        else:
            groups = len(self.readout_weights) if self.readout == "layer" else 1
        return groups * cfg.enc_layers * cfg.d_model

    @property
    def param_order(self) -> list[tuple[str, tuple[int, ...]]]:
        return self.window_tokenizer.param_order

    def _windows(self, starts: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Positions (n, K, 3), tensor ids (n, K, W) and mask (n, K, W) of the windows at ``starts``."""
        tok, k = self.window_tokenizer, self.window
        return (torch.stack([tok.positions[s:s + k] for s in starts]),
                torch.stack([tok.tensor_ids(s, k) for s in starts]),
                torch.stack([tok.mask[s:s + k] for s in starts]))

    @torch.no_grad()
    def window_codes(self, weights: torch.Tensor, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, D) weights -> ``(codes (M, n_windows, latent), blocks (M, n_windows, layers * d))``, about
        ``batch_size`` windows per forward pass (several models' windows together for small models)."""
        z, b, _ = self._encode(weights, batch_size)
        return z, b

    def _encode(self, weights: torch.Tensor, batch_size: int, stats: tuple[int, ...] = ()
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """:meth:`window_codes` and, with ``stats``, per-layer statistics of the token outputs from the same
        forward passes: (M, n_layers, len(stats), enc_layers * d), statistic 0 the mean, 1 the standard
        deviation, 2 the mean absolute value (:meth:`token_layer_moments`); only those asked for are
        accumulated."""
        tok, k, m = self.window_tokenizer, self.window, len(weights)
        if self.reference is not None:  # fitted with align: encode models in the reference's unit order
            weights = match(Permuter(self.tokenizer), self.reference, weights.float())
        per = max(1, batch_size // max(1, m))
        c = self.net.cfg.enc_layers * self.net.cfg.d_model
        # per layer the sums of h, of h^2 (only for the std) and of |h| (only when asked), in float64: the
        # std is E[h^2] - E[h]^2 over many tokens
        with_sq, with_abs = 1 in stats, 2 in stats
        sums = torch.zeros(1 + with_sq + with_abs, m, len(tok.layers), c, dtype=torch.float64)
        counts = torch.zeros(len(tok.layers))
        zs, bs = [], []
        for i in range(0, len(self.starts), per):
            starts = self.starts[i:i + per]
            pos, ids, mask = self._windows(starts)
            raw = torch.stack([tok.tokenize(weights.float(), s, k) for s in starts], dim=1)  # (M, s, K, W)
            x = self.scaler.transform(raw, ids, mask).flatten(0, 1)  # type: ignore[call-arg]
            p2, m2 = (v.expand(m, *v.shape).flatten(0, 1) for v in (pos, mask))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                if stats:
                    z, b, h = self.net.encode_tokens(x, p2, m2)  # h (M * s, K, C)
                    layer = pos[..., 0].flatten()  # (s * K,) layer of every token of these windows
                    h = h.double().reshape(m, -1, c)
                    parts = [h] + ([h * h] if with_sq else []) + ([h.abs()] if with_abs else [])
                    for j, v in enumerate(parts):
                        sums[j].index_add_(1, layer, v)
                    counts.index_add_(0, layer, torch.ones(len(layer)))
                else:
                    z, b = self.net.encode_blocks(x, p2, m2)
            zs.append(z.float().reshape(m, len(starts), -1))
            bs.append(b.float().reshape(m, len(starts), -1))
        out = None
        if stats:
            avg = sums / counts.clamp_min(1).double()[None, None, :, None]
            mean = avg[0]
            std = (avg[1] - mean ** 2).clamp_min(0).sqrt() if with_sq else None
            table = {0: mean, 1: std, 2: avg[-1]}  # avg[-1]: the |h| sums when asked for
            out = torch.stack([table[i] for i in stats], dim=2).float()  # type: ignore[misc]
        return torch.cat(zs, dim=1), torch.cat(bs, dim=1), out

    @torch.no_grad()
    def token_layer_means(self, weights: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """(N, D) weights -> (N, n_layers * enc_layers * d): SANE-style readout (``window_readout:
        tokens``), the mean of the encoder's token outputs (every block's, concatenated) over the tokens of
        each tokenizer layer, in layer order. Unlike the window codes it keeps the per-unit detail the
        compression token summarises; tokens that two covering windows share (the last window may overlap
        its neighbour) count twice."""
        return self._token_stats(weights, batch_size, (0,)).flatten(1)

    @torch.no_grad()
    def token_layer_moments(self, weights: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """(N, D) weights -> (N, n_layers, 3, enc_layers * d): per tokenizer layer the mean (as
        :meth:`token_layer_means`), the standard deviation and the mean absolute value of the token outputs
        (``benchmarks/window_readout_spread.py`` probes readouts with this spread)."""
        return self._token_stats(weights, batch_size, (0, 1, 2))

    def _token_stats(self, weights: torch.Tensor, batch_size: int, stats: tuple[int, ...]) -> torch.Tensor:
        """(N, D) weights -> (N, n_layers, len(stats), enc_layers * d) statistics of the token outputs."""
        c = self.net.cfg.enc_layers * self.net.cfg.d_model
        shape = (len(self.window_tokenizer.layers), len(stats), c)
        out = [self._encode(w, batch_size, stats)[2] for w in self._groups(weights, batch_size)]
        return torch.cat(out) if out else torch.empty(0, *shape)  # type: ignore[arg-type]

    def _groups(self, weights: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
        """``weights`` (N, D) in groups of models whose windows fill about one batch."""
        self.window_tokenizer._check(weights)
        g = max(1, batch_size // len(self.starts))
        return [weights[i:i + g] for i in range(0, len(weights), g)]

    @torch.no_grad()
    def embed_blocks(self, weights: torch.Tensor, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, D) -> ``(z (N, latent), blocks (N, blocks_dim))``: ``z`` the mean of each model's window codes
        (decodable by :meth:`decode`); ``blocks`` the compression token after every encoder block, read out
        per :attr:`readout` (``"layer"``: averaged over the windows starting in each layer, concatenated in
        layer order; ``"mean"``: over all windows; ``"tokens"``: :meth:`token_layer_means` instead;
        ``"tokens-spread"``: per layer the mean and the mean absolute value of
        :meth:`token_layer_moments`, flattened layer by layer)."""
        stats = TOKEN_READOUTS.get(self.readout, ())
        out = [self._encode(w, batch_size, stats) for w in self._groups(weights, batch_size)]
        if not out:
            return torch.empty(0, self.latent_dim), torch.empty(0, self.blocks_dim)
        blocks = [self._read(b) if t is None else t.flatten(1) for _, b, t in out]
        return torch.cat([z.mean(1) for z, _, _ in out]), torch.cat(blocks)

    def _read(self, blocks: torch.Tensor) -> torch.Tensor:
        """(M, n_windows, C) window readouts -> (M, C) mean, or (M, n_layers * C) per-layer means."""
        if self.readout == "mean":
            return blocks.mean(1)
        return torch.einsum("lw,mwc->mlc", self.readout_weights, blocks).flatten(1)

    def check_decodable(self) -> None:
        """Window codes decode to weights only with the window bottleneck; token codes (``window_latent:
        tokens``) are one per weight token, which a window code cannot stand in for."""
        if self.net.latent != "window":
            raise DataError(f"{self._meta_path()}: fitted with window_latent '{self.net.latent}' (a code per "
                            f"weight token), which decodes no window codes; for sampling refit with "
                            f"--window-latent window")

    @torch.no_grad()
    def codes(self, weights: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """(N, D) -> (N, n_windows * latent): every window's code, in order (what ``hyper sample`` draws)."""
        self.check_decodable()
        out = [self.window_codes(w, batch_size)[0].flatten(1) for w in self._groups(weights, batch_size)]
        return torch.cat(out) if out else torch.empty(0, len(self.starts) * self.latent_dim)

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """(N, n_windows * latent) -> (N, D) weights: the windows decoded in order (sequential decode)."""
        self.check_decodable()
        tok, k, n = self.window_tokenizer, self.window, len(self.starts)
        out = []
        for c in codes.float().reshape(len(codes), n, self.latent_dim):
            tokens = torch.zeros(tok.n_tokens, tok.width)
            for i in range(0, n, batch_size):
                starts = self.starts[i:i + batch_size]
                pos, ids, mask = self._windows(starts)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                    rec = self.net.decode(c[i:i + batch_size], pos).float()
                rec = self.scaler.inverse(rec, ids, mask)  # type: ignore[call-arg]
                for s, r in zip(starts, rec, strict=True):
                    tokens[s:s + k] = r
            out.append(tok.detokenize(tokens))
        return torch.stack(out) if out else torch.empty(0, tok.num_params)

    def decode(self, z: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """(N, latent) model codes -> (N, D): every window decoded from the same code (a model's mean code
        is not its window codes; sample with :meth:`codes` / :meth:`decode_codes`)."""
        return self.decode_codes(z.float().repeat(1, len(self.starts)), batch_size)


def load_window_representation(root: Path, meta: dict[str, Any], state: dict[str, torch.Tensor]
                               ) -> WindowRepresentation:
    """The :class:`WindowRepresentation` of a directory whose ``hyper.json`` (``meta``) says
    ``tokenizer: "window"`` and whose ``model.safetensors`` holds ``state``."""
    d = meta["window_tokenizer"]
    tok = WindowTokenizer([(k, tuple(s)) for k, s in d["param_order"]], int(d["width"]),
                          [tuple(c) for c in d["chains"]])  # type: ignore[misc]
    scaler = TensorScaler(state.pop("scaler.mean"), state.pop("scaler.std"))
    reference = state.pop("align.reference", None)
    if reference is not None and (tuple(reference.shape) != (tok.num_params,)
                                  or _neuron_tokenizer(tok.param_order) is None):
        raise DataError(f"{root / 'model.safetensors'}: its align.reference does not fit the architecture "
                        f"({tok.num_params} parameters, layer-list CNNs only); refit the representation")
    if tuple(scaler.mean.shape) != (len(tok.param_order),):
        raise DataError(f"{root / 'model.safetensors'}: its scaler has {tuple(scaler.mean.shape)} entries, "
                        f"the architecture {len(tok.param_order)} tensors; refit the representation")
    latent = str(meta.get("window_latent", "window"))
    if latent not in LATENTS:
        raise DataError(f"{root / 'hyper.json'}: window_latent '{latent}' is not one of "
                        f"{', '.join(LATENTS)}; fix hyper.json")
    net = WindowAutoencoder(tok.width, tok.table_sizes, ModelConfig(**meta["model"]), latent)
    net.load_state_dict(state)
    return WindowRepresentation(meta, tok, scaler, net, int(meta["window"]), root, reference)
