"""The tensors one window reads, for a batch of models: tokenise and permute a window without the rest of the
model.

A window of ``K`` tokens starting at ``start`` reads values of a few tensors of the parameter order only (the
tensors whose rows its tokens cut). :class:`WindowParts` holds those tensors, whole, for ``B`` models; the
training views of :func:`eoreps.hyper.window_module.window_views` are built from them:

* :func:`permute_parts` applies a random function-preserving permutation to every chain that touches the
  window (rows of the chain's first layer, input columns of its second), drawn independently per model and
  batched over the models. Chains the window does not read are not drawn: their permutation would not change
  the window's tokens. So a step costs what the window reads, not what the model holds (a ResNet-18 window
  reads a few of its 60 tensors), and a loader can hand over the window's tensors instead of whole models.
* :func:`tokenize_parts` cuts the window's tokens from the parts, equal to
  ``WindowTokenizer.tokenize(flat, start, K)`` of the whole model.

Every tensor of :class:`WindowParts` is kept whole because a row permutation moves any row of it into the
window; once the permutations are drawn (:func:`draw_permutations`), :func:`source_rows` names the rows the
window's tokens will read and :func:`gather_window` reads nothing else, so the streamed loader reads only
those rows from the shards.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from eoreps.hyper.window_tokens import WindowTokenizer


@dataclass(frozen=True)
class WindowParts:
    """``values[i]`` (B, numel) holds parameter-order tensor ``tensors[i]`` of ``B`` models, for the window of
    ``length`` tokens at ``start``."""

    start: int
    length: int
    tensors: tuple[int, ...]
    values: tuple[torch.Tensor, ...]

    @property
    def batch(self) -> int:
        return int(self.values[0].shape[0])


@dataclass(frozen=True)
class RawViews:
    """Two permuted views of the window of ``length`` tokens at ``start`` for ``B`` models, as raw
    (unstandardised) tokens ``view1``, ``view2`` (B, K, width): what the streamed loader hands over
    (:class:`eoreps.hyper.window_stream.WindowViewsDataset`), built one model at a time."""

    start: int
    length: int
    view1: torch.Tensor
    view2: torch.Tensor

    @property
    def batch(self) -> int:
        return int(self.view1.shape[0])


def touched_tensors(tok: WindowTokenizer, start: int, length: int) -> tuple[int, ...]:
    """Parameter-order indices (sorted) of the tensors the tokens ``start .. start + length`` read."""
    ids = tok.tensor_ids(start, length)[tok.mask[start:start + length]]
    return tuple(int(j) for j in torch.unique(ids))


def parts_from_flat(tok: WindowTokenizer, flat: torch.Tensor, start: int, length: int) -> WindowParts:
    """(B, D) whole flat weights -> the :class:`WindowParts` of the window at ``start``."""
    tok._check(flat)
    js = touched_tensors(tok, start, length)
    vals = tuple(flat[:, tok.offsets[j]:tok.offsets[j] + tok.sizes[j]] for j in js)
    return WindowParts(start, length, js, vals)


def tokenize_parts(tok: WindowTokenizer, parts: WindowParts) -> torch.Tensor:
    """(B, K, width) tokens of the window (padding 0), equal to ``tok.tokenize`` of the whole weights."""
    s, k = parts.start, parts.length
    ids, mask, local = window_entries(tok, s, k)  # tensor of each entry, real, position within its tensor
    tokens = parts.values[0].new_zeros(parts.batch, k * tok.width)
    # gathered tensor by tensor, not from their concatenation: a copy of the parts would double the memory
    # of a window that reads a large tensor
    for j, v in zip(parts.tensors, parts.values, strict=True):
        at = torch.nonzero(mask & (ids == j)).reshape(-1)
        tokens[:, at] = v[:, local[at]]
    return tokens.reshape(parts.batch, k, tok.width)


def _batched_perms(batch: int, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """(B, n) independent random permutations of ``range(n)``."""
    return torch.rand(batch, n, generator=generator).argsort(dim=1)


def _gather_units(v: torch.Tensor, perm: torch.Tensor, n_units: int, dim: int, shape: tuple[int, ...]
                  ) -> torch.Tensor:
    """(B, numel) tensor of ``shape``: reorder its ``n_units`` along ``dim`` (1: rows, 2: input columns)
    by ``perm`` (B, n_units), per model."""
    b = v.shape[0]
    if dim == 1:
        x = v.reshape(b, n_units, -1)
        idx = perm[:, :, None].expand_as(x)
    else:
        x = v.reshape(b, shape[0], n_units, -1)
        idx = perm[:, None, :, None].expand_as(x)
    return x.gather(dim, idx).reshape(b, -1)


def permute_parts(tok: WindowTokenizer, parts: WindowParts, generator: torch.Generator | None = None,
                  chains: list[tuple[int, int]] | None = None) -> WindowParts:
    """A random function-preserving permutation (one per model) of every chain whose tensors the window
    reads; the same draw for a chain's rows and its next layer's input columns, as
    :meth:`WindowTokenizer.permute` of the whole model."""
    chains = tok.chains if chains is None else chains
    where = {j: i for i, j in enumerate(parts.tensors)}
    vals = list(parts.values)
    for a, b in chains:
        la, lb = tok.layers[a], tok.layers[b]
        rows = [j for j in la.tensors if j in where]
        col = lb.tensors[0] if lb.tensors[0] in where else None
        if not rows and col is None:
            continue
        perm = _batched_perms(parts.batch, la.n_units, generator)
        for j in rows:
            vals[where[j]] = _gather_units(vals[where[j]], perm, la.n_units, 1, tok.param_order[j][1])
        if col is not None:
            vals[where[col]] = _gather_units(vals[where[col]], perm, la.n_units, 2, tok.param_order[col][1])
    return replace(parts, values=tuple(vals))


@dataclass(frozen=True)
class ChainDraws:
    """One random function-preserving permutation per model of the chains a window reads, as source maps:
    ``rows[j]`` (B, units of tensor ``j``) the source row of each row of parameter-order tensor ``j``;
    ``cols[j]`` (B, input units) the source input column of each of its columns."""

    rows: dict[int, torch.Tensor]
    cols: dict[int, torch.Tensor]


def draw_permutations(tok: WindowTokenizer, start: int, length: int, batch: int,
                      generator: torch.Generator | None = None, chains: list[tuple[int, int]] | None = None
                      ) -> ChainDraws:
    """:class:`ChainDraws` for ``batch`` models of the window at ``start``: a draw for every chain whose
    tensors the window reads, in :func:`permute_parts`' order (the same generator state, the same draws)."""
    chains = tok.chains if chains is None else chains
    where = set(touched_tensors(tok, start, length))
    rows: dict[int, torch.Tensor] = {}
    cols: dict[int, torch.Tensor] = {}
    for a, c in chains:
        la, lc = tok.layers[a], tok.layers[c]
        touched = [j for j in la.tensors if j in where]
        col = lc.tensors[0] if lc.tensors[0] in where else None
        if not touched and col is None:
            continue
        perm = _batched_perms(batch, la.n_units, generator)
        for j in touched:
            rows[j] = perm
        if col is not None:
            cols[col] = perm
    return ChainDraws(rows, cols)


Entries = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""Per entry of a window's tokens (K * width): its tensor, whether it is real, its position there."""


def window_entries(tok: WindowTokenizer, start: int, length: int) -> Entries:
    """Per entry of the window's tokens (K * width): its tensor, whether it is real, its position there."""
    ids = tok.tensor_ids(start, length).reshape(-1)
    mask = tok.mask[start:start + length].reshape(-1)
    return ids, mask, tok.index[start:start + length].reshape(-1) - tok._offsets[ids]


def values_per_row(tok: WindowTokenizer, j: int) -> int:
    """Values per row (unit) of parameter-order tensor ``j`` (a 0-d tensor is one row of one value)."""
    shape = tok.param_order[j][1]
    return tok.sizes[j] // (shape[0] if shape else 1)


def source_rows(tok: WindowTokenizer, start: int, length: int, draws: ChainDraws | None = None,
                entries: Entries | None = None) -> dict[int, torch.Tensor]:
    """Tensor ``j`` -> the sorted rows of it (over all models of ``draws``) that the window's tokens read
    under the permutation ``draws`` (None: unpermuted). A column permutation stays within a row, so these
    rows, read whole, are all :func:`gather_window` needs of the tensor: a loader can read them instead of
    the tensor (2 rows of a ResNet-18's 512-row conv for a 32 x 64 window). ``entries``: the window's
    :func:`window_entries`, when the caller already has them."""
    ids, mask, local = entries or window_entries(tok, start, length)
    out: dict[int, torch.Tensor] = {}
    for j in touched_tensors(tok, start, length):
        row = torch.unique(local[mask & (ids == j)] // values_per_row(tok, j))
        if draws is not None and j in draws.rows:
            row = torch.unique(draws.rows[j][:, row])
        out[j] = row
    return out


def gather_window(tok: WindowTokenizer, parts: WindowParts, draws: ChainDraws,
                  entries: Entries | None = None) -> torch.Tensor:
    """(B, K, width) tokens of the window of ``parts`` permuted by ``draws`` (one draw per model): each entry
    gathered from its source position, its row mapped through ``draws.rows`` and its input column through
    ``draws.cols``. Only the rows :func:`source_rows` names are read from ``parts``. ``entries``: the
    window's :func:`window_entries`, when the caller already has them."""
    s, k, b = parts.start, parts.length, parts.batch
    ids, mask, local = entries or window_entries(tok, s, k)
    tokens = parts.values[0].new_zeros(b, k * tok.width)
    for j, v in zip(parts.tensors, parts.values, strict=True):
        at = torch.nonzero(mask & (ids == j)).reshape(-1)
        per = values_per_row(tok, j)
        row, rest = (local[at] // per).expand(b, -1), (local[at] % per).expand(b, -1)
        if j in draws.rows:
            row = draws.rows[j].gather(1, row)
        if j in draws.cols:
            inner = per // draws.cols[j].shape[1]  # values per input unit (kernel positions)
            rest = draws.cols[j].gather(1, rest // inner) * inner + rest % inner
        tokens[:, at] = v.gather(1, row * per + rest)
    return tokens.reshape(b, k, tok.width)


def permuted_tokens(tok: WindowTokenizer, parts: WindowParts, generator: torch.Generator | None = None,
                    chains: list[tuple[int, int]] | None = None) -> torch.Tensor:
    """``tokenize_parts(tok, permute_parts(tok, parts, generator, chains))`` (the same draws, the same
    tokens) without the permuted copy of the window's tensors (:func:`gather_window` of
    :func:`draw_permutations`). A window on a ResNet-18's 512 x 512 x 3 x 3 conv reads 2.4 M values a
    model; its tokens are ``K * width`` of them."""
    draws = draw_permutations(tok, parts.start, parts.length, parts.batch, generator, chains)
    return gather_window(tok, parts, draws)
