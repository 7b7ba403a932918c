"""Windows streamed from a zoo's shards: ``hyper fit --tokenizer window`` without the zoo's weights in memory.

The in-memory path (``--window-data memory``) loads the training checkpoints as one (N, D) matrix and feeds
batches of whole flat weights (B, D); for ResNet-18-sized members (D = 11.2 M, 45 MB a checkpoint) that
grows with N x D. The streamed path (``--window-data stream``) never holds a whole model:

* :class:`WindowBatchSampler` draws one window start per batch (as the in-memory step does) and the batch's
  checkpoints;
* :class:`WindowPartsDataset` reads, for those checkpoints, only the tensors the window touches
  (:func:`eoreps.hyper.window_parts.touched_tensors`) straight from the shards and returns a
  :class:`~eoreps.hyper.window_parts.WindowParts`; :class:`WindowViewsDataset`, which the fit uses, draws
  each checkpoint's two permutations first, reads only the rows of those tensors that they move into the
  window (:func:`~eoreps.hyper.window_parts.source_rows`), one checkpoint at a time, and hands over that
  checkpoint's two permuted views only
  (:class:`~eoreps.hyper.window_parts.RawViews`), which
  :meth:`eoreps.hyper.window_module.WindowModule._step` standardises and augments;
* :func:`streaming_scaler` fits the per-tensor :class:`TensorScaler` in one pass over the training
  checkpoints, one tensor at a time, merging float64 means and squared deviations (Chan et al.'s pairwise
  update), equal to :meth:`TensorScaler.fit` on the whole matrix.

So the step's memory is one checkpoint's window tensors and the batch's ``2 x B x K x width`` token
values, not ``N x D`` (nor ``B`` x the tensors a window reads). ``--window-data auto`` (the default)
streams when the selected checkpoints hold more than :data:`STREAM_BYTES` of float32 weights. Every shard
used is verified against its checksum first; a missing, truncated or corrupt shard, or a checkpoint the
index lists beyond a shard's rows, is a one-line :class:`DataError` naming the file.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from eoreps.errors import ConfigError, DataError
from eoreps.hyper.window_parts import (
    RawViews,
    WindowParts,
    draw_permutations,
    gather_window,
    source_rows,
    tokenize_parts,
    touched_tensors,
    values_per_row,
    window_entries,
)
from eoreps.hyper.window_tokens import TensorScaler, WindowTokenizer
from eoreps.zoo.store import ZooStore

WINDOW_DATA = ("auto", "memory", "stream")
STREAM_BYTES = 256 * 2**20
"""``--window-data auto`` streams when the selected checkpoints' float32 weights (N x D x 4 bytes) exceed
this (e.g. 6 ResNet-18 checkpoints; 24,000 of a 2,800-parameter CNN)."""

WHOLE_VALUES = 16384
"""Tensors of at most this many float32 values (64 KiB) are read whole even when only some rows are needed."""
ROWS_ABOVE = 2**20
"""A window whose tensors hold more than this many float32 values (4 MiB) a checkpoint is read by rows;
a smaller one whole (where reading is cheaper than working out the rows)."""

_REBUILD = "rerun 'eoreps zoo build' with the same options to rebuild it"


def check_window_data(cfg: Any) -> None:
    """One-line :class:`ConfigError` when ``cfg.window_data`` is unknown or conflicts with the tokenizer or
    ``align`` (checked when the config is built, before any zoo is read)."""
    if cfg.window_data not in WINDOW_DATA:
        raise ConfigError(f"window_data={cfg.window_data!r} must be one of {', '.join(WINDOW_DATA)}")
    if cfg.window_data != "stream":
        return
    if cfg.tokenizer != "window":
        raise ConfigError("window_data='stream' needs tokenizer='window' (the per-neuron representation "
                          "reads whole models)")
    if cfg.augment.align:  # weight matching permutes whole models in memory
        raise ConfigError("window_data='stream' cannot align: weight matching needs the whole models in "
                          "memory; use window_data='memory' (or auto) with align")


def streams(cfg: Any, num_params: int, n_checkpoints: int) -> bool:
    """Whether a fit streams its windows (``cfg.window_data``; ``auto``: more than :data:`STREAM_BYTES`)."""
    check_window_data(cfg)
    if cfg.tokenizer != "window" or cfg.augment.align:
        return False
    if cfg.window_data == "auto":
        return n_checkpoints * num_params * 4 > STREAM_BYTES
    return cfg.window_data == "stream"


class ShardReader:
    """Reads value ranges of checkpoints (rows of a shard's ``weights`` (n, D) float32) with plain file
    reads. Not ``safe_open(...).get_slice``: that memory-maps the shard, and the pages it touches count in
    this process's RSS while the file stays open, which is what this path avoids."""

    def __init__(self, store: ZooStore, num_params: int, shards: Sequence[str]) -> None:
        self.store, self.num_params = store, int(num_params)
        self._layout: dict[str, tuple[int, int]] = {}  # shard -> (byte offset of weights[0, 0], rows)
        for name in dict.fromkeys(shards):
            store.check_shard(name)  # missing, truncated or corrupt: one line naming the file
            self._layout[name] = self._read_header(store.shards / name)

    def _read_header(self, path: Path) -> tuple[int, int]:
        """(byte offset of ``weights``, its rows) from the safetensors header (8-byte length + JSON)."""
        try:
            with open(path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(n))
            w = header["weights"]
            rows, d = (int(v) for v in w["shape"])
            begin, end = (int(v) for v in w["data_offsets"])
        except (OSError, struct.error, ValueError, KeyError, TypeError) as e:
            raise DataError(f"{path}: unreadable shard ({type(e).__name__}); {_REBUILD}") from None
        if w.get("dtype") != "F32" or d != self.num_params or end - begin != rows * d * 4:
            raise DataError(f"{path}: shard holds weights {w.get('dtype')} {[rows, d]}, the zoo's members "
                            f"have {self.num_params} float32 values; {_REBUILD}")
        if path.stat().st_size < 8 + n + end:
            raise DataError(f"{path}: shard is truncated ({path.stat().st_size} bytes, its header needs "
                            f"{8 + n + end}); {_REBUILD}")
        return 8 + n + begin, rows

    def check_row(self, shard: str, row: int) -> None:
        """One-line :class:`DataError` when ``shard`` lacks checkpoint ``row`` (one the index lists)."""
        rows = self._layout[shard][1]
        if not 0 <= row < rows:
            raise DataError(f"{self.store.shards / shard}: holds {rows} checkpoints, the index wants row "
                            f"{row}; {_REBUILD}")

    def read_into(self, f: Any, shard: str, row: int, offset: int, out: torch.Tensor) -> None:
        """Values ``offset .. offset + len(out)`` of checkpoint ``row`` of the open ``shard`` file ``f``
        into ``out`` (contiguous float32)."""
        f.seek(self._layout[shard][0] + (row * self.num_params + offset) * 4)
        want = out.numel() * 4
        if f.readinto(memoryview(out.numpy()).cast("B")) != want:
            raise DataError(f"{self.store.shards / shard}: shard is truncated; {_REBUILD}")

    def open(self, shard: str) -> Any:
        return open(self.store.shards / shard, "rb")


def _runs(rows: list[int]) -> Iterator[tuple[int, int]]:
    """Sorted distinct rows -> ``(first, end)`` of each run of consecutive rows."""
    i = 0
    while i < len(rows):
        j = i
        while j + 1 < len(rows) and rows[j + 1] == rows[j] + 1:
            j += 1
        yield rows[i], rows[j] + 1
        i = j + 1


def _by_shard(rows: pd.DataFrame) -> Iterator[tuple[str, list[tuple[int, int]]]]:
    """``(shard, [(position in rows, row in shard), ...])`` for the checkpoints of ``rows``."""
    for shard, grp in rows.groupby("shard", sort=False):
        yield str(shard), list(zip(grp["_pos"].tolist(), grp["row"].astype(int).tolist(), strict=True))


def streaming_scaler(tok: WindowTokenizer, reader: ShardReader, rows: pd.DataFrame) -> TensorScaler:
    """:meth:`TensorScaler.fit` of the checkpoints ``rows`` (index rows with ``shard``, ``row``) in one pass,
    a tensor at a time: float64 count, mean and sum of squared deviations per tensor, merged per tensor and
    checkpoint (Chan, Golub & LeVeque's pairwise update: stable where sum/sum-of-squares would cancel)."""
    p = len(tok.sizes)
    count, mean, m2 = (torch.zeros(p, dtype=torch.float64) for _ in range(3))
    buf = torch.empty(max(tok.sizes))
    for shard, members in _by_shard(rows.assign(_pos=range(len(rows)))):
        with reader.open(shard) as f:
            for _, r in members:
                reader.check_row(shard, r)
                for j, (o, n) in enumerate(zip(tok.offsets, tok.sizes, strict=True)):
                    reader.read_into(f, shard, r, o, buf[:n])
                    v = buf[:n].double()
                    mb = v.mean()
                    m2b = ((v - mb) ** 2).sum()
                    total = count[j] + n
                    delta = mb - mean[j]
                    mean[j] += delta * n / total
                    m2[j] += m2b + delta * delta * count[j] * n / total
                    count[j] = total
    return TensorScaler.from_moments(count, mean, m2)


class WindowPartsDataset(Dataset):
    """Item ``(start, (i, ...))``: the :class:`WindowParts` of the window at ``start`` for checkpoints
    ``i, ...`` of ``rows`` (zoo index rows with ``shard`` and ``row``), read from the shards."""

    def __init__(self, tok: WindowTokenizer, window: int, reader: ShardReader, rows: pd.DataFrame) -> None:
        self.tok, self.window, self.reader = tok, int(window), reader
        self.rows = rows.reset_index(drop=True)
        for shard, r in zip(self.rows["shard"].astype(str), self.rows["row"].astype(int), strict=True):
            reader.check_row(shard, r)

    def __len__(self) -> int:
        return len(self.rows)

    def _each_checkpoint(self, idx: Sequence[int]
                         ) -> Iterator[tuple[int, Callable[..., None]]]:
        """``(position in idx, read)`` for the checkpoints ``idx``, shard by shard (each shard opened once);
        ``read(j, out, rows=None)`` reads parameter-order tensor ``j`` of that checkpoint into ``out`` (its
        numel): whole, or only its sorted ``rows``."""
        sel = self.rows.iloc[list(idx)].assign(_pos=range(len(idx)))
        for shard, members in _by_shard(sel):
            with self.reader.open(shard) as f:
                for b, r in members:
                    yield b, partial(self._read_tensor, f, shard, r)

    def _read_tensor(self, f: Any, shard: str, r: int, j: int, out: torch.Tensor,
                     rows: torch.Tensor | None = None) -> None:
        """Tensor ``j`` of checkpoint ``r`` into ``out`` (its numel): whole, or only its sorted ``rows``
        (one read per run of consecutive rows; the other rows of ``out`` are left as they are). A tensor of
        at most :data:`WHOLE_VALUES` values is read whole: one read is cheaper than several small ones."""
        if rows is None or out.numel() <= WHOLE_VALUES:
            self.reader.read_into(f, shard, r, self.tok.offsets[j], out)
            return
        per = values_per_row(self.tok, j)
        for a, b in _runs(rows.tolist()):
            self.reader.read_into(f, shard, r, self.tok.offsets[j] + a * per, out[a * per:b * per])

    def __getitem__(self, item: tuple[int, Sequence[int]]) -> WindowParts:
        start, idx = int(item[0]), list(item[1])
        js = touched_tensors(self.tok, start, self.window)
        vals = tuple(torch.empty(len(idx), self.tok.sizes[j]) for j in js)
        for b, read in self._each_checkpoint(idx):
            for j, v in zip(js, vals, strict=True):
                read(j, v[b])
        return WindowParts(start, self.window, js, vals)


class WindowViewsDataset(WindowPartsDataset):
    """Item ``(start, (i, ...))``: the two permuted views (:class:`RawViews`) of the window at ``start`` for
    checkpoints ``i, ...``, built one checkpoint at a time: the permutations are drawn first, then only the
    rows they move into the window are read (:func:`~eoreps.hyper.window_parts.source_rows`) into one
    checkpoint's window-tensor buffers, not the batch's. A ResNet-18 window on its 512 x 512 x 3 x 3 conv
    holds 9.4 MB of buffers (600 MB at batch 64 as :class:`WindowPartsDataset`) and reads a few of its rows
    (18 KB each) per view. ``permute``: draw a function-preserving permutation of the tokenizer's chains per
    view (:func:`~eoreps.hyper.window_parts.draw_permutations`; tokens by
    :func:`~eoreps.hyper.window_parts.gather_window`, equal to ``permuted_tokens``), else both views are the
    window's tokens. Rows are read where the window's tensors exceed :data:`ROWS_ABOVE` values a
    checkpoint (and a tensor of at most :data:`WHOLE_VALUES` whole); ``rows_only=False`` reads them whole
    (the earlier loader, kept as the baseline of ``benchmarks/window_stream_read.py``)."""

    def __init__(self, tok: WindowTokenizer, window: int, reader: ShardReader, rows: pd.DataFrame,
                 permute: bool, rows_only: bool = True) -> None:
        super().__init__(tok, window, reader, rows)
        self.permute, self.rows_only = bool(permute), bool(rows_only)

    def __getitem__(self, item: tuple[int, Sequence[int]]) -> RawViews:  # type: ignore[override]
        start, idx = int(item[0]), list(item[1])
        tok, k = self.tok, self.window
        js = touched_tensors(tok, start, k)
        one = tuple(torch.empty(1, tok.sizes[j]) for j in js)  # one checkpoint's window tensors, reused
        parts = WindowParts(start, k, js, one)
        views = torch.empty(2, len(idx), k, tok.width)
        ent = window_entries(tok, start, k)  # per window, not per checkpoint
        # finding the rows costs about a millisecond a checkpoint (small torch ops): worth it only when the
        # window's tensors are large (benchmarks/window_stream_read.py: 1.2-1.4x on a ResNet-18 zoo, 0.7-0.85x
        # on a 0.7 M-parameter one with rows for every window, both from the page cache)
        by_rows = self.rows_only and sum(tok.sizes[j] for j in js) > ROWS_ABOVE
        plain = source_rows(tok, start, k, entries=ent) if by_rows and not self.permute else {}
        for b, read in self._each_checkpoint(idx):
            if self.permute:  # two draws; only the rows they move into the window are read
                d1, d2 = (draw_permutations(tok, start, k, 1) for _ in range(2))
                if by_rows:
                    r1, r2 = source_rows(tok, start, k, d1, ent), source_rows(tok, start, k, d2, ent)
                for j, v in zip(js, one, strict=True):
                    read(j, v[0], torch.unique(torch.cat([r1[j], r2[j]])) if by_rows else None)
                views[0, b] = gather_window(tok, parts, d1, ent)[0]
                views[1, b] = gather_window(tok, parts, d2, ent)[0]
            else:
                for j, v in zip(js, one, strict=True):
                    read(j, v[0], plain[j] if by_rows else None)
                views[:, b] = tokenize_parts(tok, parts)[0]
        return RawViews(start, k, views[0], views[1])


class WindowBatchSampler(Sampler):
    """Yields ``(window start, checkpoint indices)`` per batch: ``n // batch`` batches (the last partial
    one dropped, as the in-memory loader), shuffled or in order, one random window start per batch."""

    def __init__(self, n: int, batch: int, n_starts: int, shuffle: bool) -> None:
        self.n, self.batch, self.n_starts, self.shuffle = int(n), int(batch), int(n_starts), shuffle

    def __len__(self) -> int:
        return self.n // self.batch

    def __iter__(self) -> Iterator[tuple[int, tuple[int, ...]]]:
        order = torch.randperm(self.n) if self.shuffle else torch.arange(self.n)
        for k in range(len(self)):
            start = int(torch.randint(0, self.n_starts, (1,)))
            yield start, tuple(order[k * self.batch:(k + 1) * self.batch].tolist())


def _as_is(item: Any) -> Any:
    """The loader's collate function: a dataset item is already a whole batch."""
    return item


def stream_loaders(cfg: Any, zoo: Any, props: pd.DataFrame, train_mask: torch.Tensor, val_mask: torch.Tensor
                   ) -> tuple[Any, DataLoader, DataLoader, RawViews]:
    """``(module, train loader, validation loader, an example training batch)`` of a streamed fit: the
    scaler fitted by :func:`streaming_scaler` on the training checkpoints."""
    from eoreps.hyper.window_fit import window_module_with

    train_rows = props[train_mask.numpy()].reset_index(drop=True)
    val_rows = props[val_mask.numpy()].reset_index(drop=True)
    reader = ShardReader(zoo.store, zoo.num_params, [*train_rows["shard"].astype(str),
                                                     *val_rows["shard"].astype(str)])
    module = window_module_with(cfg, zoo, lambda tok: streaming_scaler(tok, reader, train_rows))
    tok, k = module.tokenizer, module.window
    n_starts = tok.n_tokens - k + 1
    bs = min(cfg.batch_size, len(train_rows))
    train = WindowViewsDataset(tok, k, reader, train_rows, cfg.augment.permute)
    val = WindowViewsDataset(tok, k, reader, val_rows, cfg.augment.permute)
    val_bs = min(cfg.batch_size, max(2, len(val_rows)))

    def loader(ds: WindowViewsDataset, b: int, shuffle: bool) -> DataLoader:
        return DataLoader(ds, sampler=WindowBatchSampler(len(ds), b, n_starts, shuffle), batch_size=None,
                          collate_fn=_as_is)

    example = train[(0, tuple(range(bs)))]
    return module, loader(train, bs, True), loader(val, val_bs, False), example

