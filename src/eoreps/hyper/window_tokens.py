"""Sequential weight tokens for any architecture (SANE-style): rows per output unit, cut into fixed-width
chunks.

The floating-point tensors of a state dict (or a zoo's ``param_order``) are grouped into **layers**, in
state-dict order:

* a tensor of two or more dimensions (conv ``(out, in, kh, kw)``, linear ``(out, in)``, embeddings, ViT
  ``cls_token``/``pos_embed`` ``(1, ...)``) starts a layer whose units are its rows along dim 0;
* a 1-D tensor (bias, BatchNorm/LayerNorm ``weight``/``bias``/``running_mean``/``running_var``) of the
  current layer's length is appended to that layer's unit rows (a conv's bias and the BatchNorm that
  follows it share one row per output channel); otherwise it starts a layer of its own (one unit per
  entry); a 0-d tensor is a 1-D tensor of length 1.

Unit ``i`` of a layer is the concatenation of ``tensor.reshape(n, -1)[i]`` over the layer's tensors; its
row is cut into ``ceil(len / width)`` tokens of ``width`` values (the last zero-padded, masked out).
Every token has the 3-part position ``(layer index, unit index, chunk index)``. The map is a fixed gather
index, so ``detokenize(tokenize(w))`` returns ``w`` bit for bit. Integer buffers (BatchNorm's
``num_batches_tracked``) are counters, not weights: a state dict's are not tokenised
(:attr:`WindowTokenizer.skipped`). A backbone zoo stores them as float tensors in its parameter order, so
there each counter is a one-value layer of its own, seen by the tokenizer as by s(W) (docs/hyper.md).

**Permutations.** Chains ``(a, b)`` are consecutive layers with the same parent module where ``b``'s input
dimension (dim 1) is a multiple of ``a``'s units (``conv1 -> conv2`` inside a residual block,
``fc1 -> fc2`` of an MLP, the whole of a layer-list CNN). Permuting ``a``'s units (its rows, bias and
attached norm statistics) and ``b``'s matching input columns keeps the function. Layers whose output is
summed by a skip connection (the last conv of a residual block, the stem, downsampling shortcuts) are in
no chain and never permuted: that is the documented restriction for residual networks. The same-parent
rule is a heuristic (a module with parallel ``q``/``k``/``v`` linears would fool it), so
:func:`verify_chains` keeps only the chains whose permutation leaves a real module's output unchanged;
``eoreps hyper fit --tokenizer window`` runs it on the zoo's own network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from eoreps.errors import ConfigError

ParamOrder = list[tuple[str, tuple[int, ...]]]


@dataclass(frozen=True)
class UnitLayer:
    """A group of tensors sharing one unit axis (dim 0): ``tensors`` are indices into the parameter order,
    the first the layer's main tensor; ``row`` values per unit; ``chunks`` tokens per unit."""

    name: str
    tensors: tuple[int, ...]
    n_units: int
    row: int
    chunks: int
    token_offset: int


def _parent(key: str) -> str:
    """'layer1.0.conv1.weight' -> 'layer1.0' (the module that holds the tensor's module)."""
    module = key.rsplit(".", 1)[0] if "." in key else ""
    return module.rsplit(".", 1)[0] if "." in module else ""


def _units(shape: tuple[int, ...]) -> int:
    return int(shape[0]) if shape else 1


def group_layers(param_order: ParamOrder, width: int) -> list[UnitLayer]:
    """Group ``[(key, shape), ...]`` into :class:`UnitLayer` s (see the module docstring).

    Raises :class:`ConfigError` (one line) for an architecture that cannot be tokenised: no tensors, or a
    tensor with a zero-sized dimension.
    """
    if width < 1:
        raise ConfigError(f"token_width={width} must be >= 1")
    if not param_order:
        raise ConfigError("the architecture has no floating-point parameters; nothing to tokenise")
    groups: list[list[int]] = []
    for i, (key, shape) in enumerate(param_order):
        if math.prod(shape) == 0:
            raise ConfigError(f"parameter '{key}' has shape {tuple(shape)} (no values); an architecture with "
                              f"empty tensors cannot be tokenised")
        n = _units(shape)
        if len(shape) <= 1 and groups and _units(param_order[groups[-1][0]][1]) == n:
            groups[-1].append(i)
        else:
            groups.append([i])
    layers, t = [], 0
    for g in groups:
        key, shape = param_order[g[0]]
        n = _units(shape)
        row = sum(math.prod(param_order[j][1]) // n for j in g)
        chunks = -(-row // width)
        layers.append(UnitLayer(key.rsplit(".", 1)[0], tuple(g), n, row, chunks, t))
        t += n * chunks
    return layers


class WindowTokenizer:
    """Flat weights (..., D) <-> tokens (..., T, width) with mask (T, width) and positions (T, 3).

    Build from a parameter order (a zoo's ``param_order``) or a module / state dict
    (:meth:`from_state_dict`); ``chains`` (default: :func:`candidate_chains`) are the permutable layer pairs.
    """

    def __init__(self, param_order: ParamOrder, width: int = 64,
                 chains: list[tuple[int, int]] | None = None) -> None:
        self.param_order: ParamOrder = [(str(k), tuple(int(v) for v in s)) for k, s in param_order]
        self.width = int(width)
        self.layers = group_layers(self.param_order, self.width)
        self.sizes = [math.prod(s) for _, s in self.param_order]
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.num_params = sum(self.sizes)
        self._offsets = torch.tensor(self.offsets)
        self.skipped: list[str] = []
        self.chains = candidate_chains(self) if chains is None else [(int(a), int(b)) for a, b in chains]
        # filled layer by layer in place: the index holds ~D entries, and building it from per-layer pieces
        # (cat, pad, cat) would hold several copies at once (~270 MB more for a ResNet-18); int32 where D
        # allows (45 MB instead of 90 for a ResNet-18, alive as long as the tokenizer)
        last = self.layers[-1]
        wide = torch.long if self.num_params >= 2**31 else torch.int32
        index = torch.full((last.token_offset + last.n_units * last.chunks, self.width), -1, dtype=wide)
        pos = torch.empty(index.shape[0], 3, dtype=torch.long)
        for li, layer in enumerate(self.layers):
            n, t0, t1 = layer.n_units, layer.token_offset, layer.token_offset + layer.n_units * layer.chunks
            rows = index[t0:t1].view(n, layer.chunks * self.width)  # (n, padded row) view of the index
            col = 0
            for j in layer.tensors:
                o, per = self.offsets[j], self.sizes[j] // n
                rows[:, col:col + per] = torch.arange(o, o + self.sizes[j]).view(n, per)
                col += per
            pos[t0:t1, 0] = li
            pos[t0:t1, 1] = torch.arange(n).repeat_interleave(layer.chunks)
            pos[t0:t1, 2] = torch.arange(layer.chunks).repeat(n)
        self.mask = index >= 0
        self.index = index.clamp_min_(0)
        self.positions = pos

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor] | torch.nn.Module, width: int = 64
                        ) -> WindowTokenizer:
        """Tokenizer of a module or state dict's floating-point tensors (integer buffers are skipped)."""
        sd = state.state_dict() if isinstance(state, torch.nn.Module) else state
        order: ParamOrder = []
        skipped = []
        for k, v in sd.items():
            if v.is_floating_point():
                order.append((k, tuple(v.shape)))
            elif v.is_complex():
                raise ConfigError(f"parameter '{k}' is complex ({v.dtype}); only real-valued weights can be "
                                  f"tokenised")
            else:
                skipped.append(k)
        tok = cls(order, width)
        tok.skipped = skipped
        return tok

    # ------------------------------------------------------------------ sizes
    @property
    def n_tokens(self) -> int:
        return int(self.index.shape[0])

    @property
    def table_sizes(self) -> tuple[int, int, int]:
        """Sizes of the three position tables: layers, units (widest layer), chunks (longest row)."""
        return (len(self.layers), max(la.n_units for la in self.layers), max(la.chunks for la in self.layers))

    def window_starts(self, window: int) -> list[int]:
        """Starts of the windows that cover every token: stride ``window``, the last one flush with the
        end."""
        self.check_window(window)
        starts = list(range(0, self.n_tokens - window + 1, window))
        if starts[-1] + window < self.n_tokens:
            starts.append(self.n_tokens - window)
        return starts

    def check_window(self, window: int) -> None:
        """One-line :class:`ConfigError` unless ``1 <= window <= n_tokens``."""
        if not 1 <= window <= self.n_tokens:
            raise ConfigError(f"window={window} must lie in [1, {self.n_tokens}]: the model has "
                              f"{self.n_tokens} tokens of width {self.width}; use a smaller window (or a "
                              f"smaller token width)")

    def tensor_ids(self, start: int = 0, length: int | None = None) -> torch.Tensor:
        """(L, width) index of the parameter-order tensor each entry of tokens ``start .. start + L`` comes
        from (padding: tensor 0, as the index is clamped; masked anyway)."""
        end = self.n_tokens if length is None else start + length
        return torch.searchsorted(self._offsets, self.index[start:end].long(), right=True) - 1

    # ------------------------------------------------------------------ flat <-> tokens
    def _check(self, flat: torch.Tensor) -> None:
        if flat.shape[-1] != self.num_params:
            raise ConfigError(f"weight vectors have {flat.shape[-1]} values, the tokenizer expects "
                              f"{self.num_params}; the representation was trained on another architecture")

    def tokenize(self, flat: torch.Tensor, start: int = 0, length: int | None = None) -> torch.Tensor:
        """(..., D) -> (..., L, width) tokens ``start .. start + L`` (default all); padding is 0."""
        self._check(flat)
        end = self.n_tokens if length is None else start + length
        idx, mask = self.index[start:end].long(), self.mask[start:end]
        tok = flat[..., idx.reshape(-1)].reshape(*flat.shape[:-1], *idx.shape)
        return torch.where(mask, tok, torch.zeros((), dtype=tok.dtype))

    def detokenize(self, tokens: torch.Tensor) -> torch.Tensor:
        """(..., T, width) -> (..., D) weights (padding ignored); exact inverse of :meth:`tokenize`."""
        out = tokens.new_zeros(*tokens.shape[:-2], self.num_params)
        out[..., self.index[self.mask].long()] = tokens[..., self.mask]
        return out

    def flatten(self, state: dict[str, torch.Tensor]) -> torch.Tensor:
        """A state dict -> (D,) flat vector (float64 when a tensor is, else float32: lossless)."""
        wide = any(state[k].dtype == torch.float64 for k, _ in self.param_order)
        dtype = torch.float64 if wide else torch.float32
        return torch.cat([state[k].detach().reshape(-1).to(dtype) for k, _ in self.param_order])

    def unflatten(self, flat: torch.Tensor, dtypes: dict[str, torch.dtype] | None = None
                  ) -> dict[str, torch.Tensor]:
        """(D,) -> state dict of the tokenised tensors (cast back to ``dtypes`` where given)."""
        self._check(flat)
        dtypes = dtypes or {}
        return {k: flat[o:o + n].reshape(s).to(dtypes.get(k, flat.dtype))
                for (k, s), o, n in zip(self.param_order, self.offsets, self.sizes, strict=True)}

    # ------------------------------------------------------------------ permutations
    def permute(self, flat: torch.Tensor, generator: torch.Generator | None = None,
                chains: list[tuple[int, int]] | None = None) -> torch.Tensor:
        """(D,) weights with a random function-preserving permutation of every chain's units: the
        permutation of a window covering the whole model (:func:`eoreps.hyper.window_parts.permute_parts`,
        the one bookkeeping of rows and input columns)."""
        from eoreps.hyper.window_parts import parts_from_flat, permute_parts  # it imports this module

        chains = self.chains if chains is None else chains
        if not chains:
            return flat
        whole = parts_from_flat(self, flat[None], 0, self.n_tokens)  # every tensor, in parameter order
        return torch.cat(permute_parts(self, whole, generator, chains).values, dim=1)[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (rebuild with ``WindowTokenizer(**d)``)."""
        return {"param_order": [[k, list(s)] for k, s in self.param_order], "width": self.width,
                "chains": [list(c) for c in self.chains]}


def candidate_chains(tok: WindowTokenizer) -> list[tuple[int, int]]:
    """Consecutive layer pairs ``(a, b)`` of one parent module whose main tensors have two or more
    dimensions and where ``b``'s input dimension equals ``a``'s units (or, for a linear ``b`` after a
    flatten, is a multiple of them; see the module docstring)."""
    # scalar layers (a 0-d tensor such as a backbone zoo's float ``num_batches_tracked``) have no units and
    # sit between the layers they do not connect
    layers = [li for li, la in enumerate(tok.layers) if tok.param_order[la.tensors[0]][1]]
    out = []
    for a, b in zip(layers, layers[1:], strict=False):
        ka, sa = tok.param_order[tok.layers[a].tensors[0]]
        kb, sb = tok.param_order[tok.layers[b].tensors[0]]
        n = tok.layers[a].n_units
        if (len(sa) >= 2 and len(sb) >= 2 and _parent(ka) == _parent(kb)
                and (sb[1] == n or (len(sb) == 2 and sb[1] % n == 0))):
            out.append((a, b))
    return out


@torch.no_grad()
def verify_chains(tok: WindowTokenizer, module: torch.nn.Module, example: torch.Tensor,
                  atol: float = 1e-4) -> list[tuple[int, int]]:
    """The chains of ``tok`` whose random permutation leaves ``module(example)`` unchanged (eval mode);
    ``module`` must have the tokenizer's architecture."""
    from eoreps.hyper.window_parts import WindowParts, permute_parts  # it imports this module

    was_training = module.training
    module.eval()
    sd = module.state_dict()  # the live tensors: each chain is permuted in place and restored
    ref = module(example)
    kept = []
    gen = torch.Generator().manual_seed(0)
    try:
        for a, b in tok.chains:
            js = (*tok.layers[a].tensors, tok.layers[b].tensors[0])
            live = [sd[tok.param_order[j][0]] for j in js]
            saved = [t.clone() for t in live]  # the chain's tensors only, not a copy of the model
            parts = WindowParts(0, 0, js, tuple(t.reshape(1, -1) for t in saved))
            try:
                for t, v in zip(live, permute_parts(tok, parts, gen, [(a, b)]).values, strict=True):
                    t.copy_(v.reshape(t.shape))
                out = module(example)
            finally:  # the module leaves unchanged even when a permuted forward raises
                for t, v in zip(live, saved, strict=True):
                    t.copy_(v)
            scale = ref.abs().max().clamp_min(1.0)
            if out.shape == ref.shape and bool(((out - ref).abs().max() / scale) <= atol):
                kept.append((a, b))
    finally:
        module.train(was_training)
    return kept


class TensorScaler:
    """Per-tensor standardisation of tokens: every tensor of the parameter order gets the mean and standard
    deviation of its values over the training models (``mean``, ``std``: (P,)); tokens are looked up by
    :meth:`WindowTokenizer.tensor_ids`, so a window is standardised without touching the rest of the model."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean, self.std = mean.float(), std.float()

    @classmethod
    def fit(cls, tok: WindowTokenizer, weights: torch.Tensor) -> TensorScaler:
        """Fit on (N, D) training weights."""
        p = len(tok.sizes)
        count, mean, m2 = (torch.zeros(p, dtype=torch.float64) for _ in range(3))
        for j, (o, n) in enumerate(zip(tok.offsets, tok.sizes, strict=True)):
            vals = weights[:, o:o + n].double()
            count[j], mean[j] = vals.numel(), vals.mean()
            m2[j] = vals.var() * (vals.numel() - 1) if vals.numel() > 1 else 0.0  # no centred copy
        return cls.from_moments(count, mean, m2)

    @classmethod
    def from_moments(cls, count: torch.Tensor, mean: torch.Tensor, m2: torch.Tensor) -> TensorScaler:
        """The scaler of per-tensor counts, means and sums of squared deviations (P,): the sample standard
        deviation, 1 where it is undefined (a single value), not finite or below 1e-8 (a constant tensor)."""
        std = torch.where(count > 1, (m2 / (count - 1).clamp_min(1)).sqrt(), torch.ones_like(m2))
        std = torch.where(torch.isfinite(std) & (std > 1e-8), std, torch.ones_like(std))
        return cls(mean.float(), std.float())

    def _lookup(self, v: torch.Tensor, ids: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return v.to(like.device)[ids].to(like.dtype)

    def transform(self, tokens: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Raw tokens (..., L, W) with their tensor ids and mask (L, W) -> standardised (padding 0)."""
        out = (tokens - self._lookup(self.mean, ids, tokens)) / self._lookup(self.std, ids, tokens)
        return torch.where(mask, out, torch.zeros((), dtype=out.dtype))

    def inverse(self, tokens: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Standardised tokens -> raw tokens (padding 0)."""
        out = tokens * self._lookup(self.std, ids, tokens) + self._lookup(self.mean, ids, tokens)
        return torch.where(mask, out, torch.zeros((), dtype=out.dtype))
