"""Checkpoints that survive a full disk and a kill, and resumes that lose nothing (pretrain
and fit share these).

* :class:`AtomicCheckpointIO` -- Lightning's checkpoint writer, writing to a temporary file beside the
  target and ``os.replace``-ing it (:func:`eoreps.io.atomic_path`), so a failed write (full disk, kill)
  keeps the previous checkpoint; a full disk becomes a one-line :class:`~eoreps.errors.DataError`.
* :class:`RunState` -- a callback that stores what identifies the run (method, backbone, modalities ...)
  and the elapsed training time in every checkpoint (``checkpoint["eoreps"]``).
* :func:`check_resume` -- reads a checkpoint before ``Trainer.fit(ckpt_path=...)``: one line when it is
  truncated or was written by another run; its step and elapsed time otherwise.
* :class:`ResumableCSVLogger` -- Lightning's ``CSVLogger`` deletes ``metrics.csv`` when it starts; this
  one keeps the rows logged before the checkpoint a run resumes from.
* :class:`ResumableSampler` -- the training order as a function of ``(seed, epoch)`` only, sharded
  across processes, able to start mid-epoch: a resumed run sees the samples an uninterrupted run sees.
"""

from __future__ import annotations

import csv
import errno
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from torch.utils.data import DataLoader, Sampler

from eoreps.errors import ConfigError, DataError
from eoreps.io import atomic_path
from eoreps.vocabulary import PRECISIONS, normalize_precision

STATE_KEY = "eoreps"


def disk_full(path: str | Path) -> DataError:
    """The one-line error of a checkpoint write that ran out of disk space."""
    return DataError(f"{path}: no space left on device while writing the checkpoint; the previous checkpoint "
                     "is kept; free disk space and run again to resume")


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file in the checkpoint's folder, fsync, ``os.replace``.

    Lightning's own writer opens the target for writing first, so a full disk leaves a truncated
    (often empty) ``last.ckpt`` in place of the previous good one.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` atomically (``storage_options`` are not supported)."""
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        try:
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                torch.save(checkpoint, f)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise disk_full(path) from None
            raise


class RunState(L.Callback):
    """Stores ``identity`` and the elapsed training time (``offset_s`` + time since ``t0``) in checkpoints.

    Args:
        identity: what a resumed run must share with the checkpoint (e.g. method, backbone, modalities).
        t0: ``time.perf_counter()`` at the start of this run.
        offset_s: seconds spent by the runs this one resumes.
        final: when set, the checkpoint also written at the end of training (its step is then the final one,
            readable after ``ddp_spawn`` whose parent trainer never sees the children's steps).
    """

    def __init__(
        self, identity: dict[str, Any], t0: float, offset_s: float = 0.0, final: Path | None = None
    ) -> None:
        self.identity, self.t0, self.offset_s, self.final = dict(identity), t0, offset_s, final

    def elapsed(self) -> float:
        """Training seconds so far, the resumed runs included."""
        return self.offset_s + time.perf_counter() - self.t0

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[STATE_KEY] = {"identity": self.identity, "elapsed_s": self.elapsed()}
        # rows logged so far reach the disk with the checkpoint (a kill keeps them)
        for logger in trainer.loggers:
            logger.save()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.final is not None:
            trainer.save_checkpoint(self.final)


@dataclass
class ResumePoint:
    """Where a checkpoint left off."""

    path: Path
    global_step: int
    elapsed_s: float


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint on the CPU; a truncated or unreadable file raises a one-line DataError."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated zip, empty file (EOFError), pickling errors: all mean "corrupt"
        raise DataError(
            f"{path}: corrupt checkpoint ({type(e).__name__}); delete it to start fresh"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise DataError(f"{path}: not a Lightning checkpoint; delete it to start fresh")
    return ckpt


def _show(identity: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v!r}" for k, v in identity.items())


def check_resume(path: Path, identity: dict[str, Any], fix: str) -> ResumePoint:
    """Read ``path`` and check it was written by a run with the same ``identity``.

    Args:
        path: the checkpoint.
        identity: this run's identity (as given to :class:`RunState`).
        fix: the end of the error line, what to do instead (e.g. ``"use another --out or drop --resume"``).
    """
    ckpt = read_checkpoint(path)
    state = ckpt.get(STATE_KEY, {})
    theirs = state.get("identity") or {}
    differ = [k for k in identity if k in theirs and _plain(k, theirs[k]) != _plain(k, identity[k])]
    if differ:
        raise DataError(f"{path}: written by {_show({k: theirs[k] for k in differ})}; this run has "
                        f"{_show({k: identity[k] for k in differ})}; {fix}")
    return ResumePoint(path, int(ckpt.get("global_step", 0)), float(state.get("elapsed_s", 0.0)))


def _plain(key: str, v: Any) -> Any:
    """The comparable form of an identity value: tuples as lists, a precision in its short form (checkpoints
    written before the one vocabulary recorded Lightning's ``32-true``)."""
    if key == "precision" and isinstance(v, str):
        try:
            return normalize_precision(v, (*PRECISIONS, "fp64"))
        except ConfigError:
            return v
    return list(v) if isinstance(v, tuple) else v


def checkpoint_step(path: Path) -> int | None:
    """The ``global_step`` stored in ``path`` (``None`` when there is no readable checkpoint)."""
    if not path.is_file():
        return None
    try:
        return int(read_checkpoint(path).get("global_step", 0))
    except DataError:
        return None


# ---------------------------------------------------------------------------------------- metrics.csv
class _KeepingWriter(ExperimentWriter):
    """Keeps the rows of ``metrics.csv`` logged before step ``keep_before`` instead of deleting the file."""

    def __init__(self, log_dir: str, keep_before: int | None) -> None:
        self.keep_before = keep_before
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if self.keep_before is None:
            super()._check_log_dir_exists()
            return
        if not path.is_file():  # killed before the first rows were written
            return
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            keys = list(reader.fieldnames or [])
            rows = [r for r in reader if r.get("step", "") != "" and int(float(r["step"])) < self.keep_before]
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        self.metrics_keys = sorted(keys)  # appends use the same columns; new keys rewrite the header


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger(out, name="logs", version="")`` that, when ``resume_step`` is set, keeps the rows of
    ``out/logs/metrics.csv`` logged before that step (the later ones are logged again by the resumed run)."""

    def __init__(self, out: Path, resume_step: int | None, flush_every: int = 100) -> None:
        super().__init__(str(out), name="logs", version="", flush_logs_every_n_steps=flush_every)
        self.resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        """The writer (built on first use, on rank 0 only)."""
        if self._experiment is None:
            self._experiment = _KeepingWriter(self.log_dir, self.resume_step)
        return self._experiment


# ------------------------------------------------------------------------------------------- sampler
class ResumableSampler(Sampler[int]):
    """A shuffle whose order depends on ``(seed, epoch)`` only, sharded across processes; can start mid-epoch.

    Epoch ``e`` is ``randperm(n)`` seeded with ``(seed, e)``, padded by wrapping around to a multiple of
    ``world`` (as ``DistributedSampler`` does); process ``rank`` takes every ``world``-th index.
    Lightning calls :meth:`set_epoch`; after :meth:`load_state_dict` (Lightning restores it from the
    checkpoint through the loader, see :class:`ResumableLoader`) the next pass skips the batches the
    checkpoint's ``global_step`` already trained on. Why not torch's ``RandomSampler``: its order comes
    from a generator whose state is not in the checkpoint, and it cannot start mid-epoch.

    Args:
        n: dataset length. batch_size: per process (one step = one batch). seed: shuffle seed.
        drop_last: the loader drops the last incomplete batch. rank, world: this process, the process count.
        steps: the trainer's ``global_step`` (what :meth:`state_dict` records).
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, drop_last: bool = True, rank: int = 0,
                 world: int = 1, steps: Callable[[], int] | None = None) -> None:
        self.n, self.batch_size, self.seed, self.drop_last = n, batch_size, seed, drop_last
        self.rank, self.world, self.steps = rank, max(1, world), steps
        self.epoch, self._resume_step = 0, None

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order the next pass uses (called by Lightning)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(self.n / self.world)

    def batches_per_epoch(self) -> int:
        """Batches (steps) of one pass."""
        return len(self) // self.batch_size if self.drop_last else math.ceil(len(self) / self.batch_size)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g)
        total = len(self) * self.world
        if total > self.n:
            perm = torch.cat([perm, perm[: total - self.n]])
        mine = perm[self.rank::self.world].tolist()
        skip = 0
        if self._resume_step is not None:
            per_epoch = self.batches_per_epoch()
            skip = min(max(self._resume_step - self.epoch * per_epoch, 0), per_epoch) * self.batch_size
            self._resume_step = None
        yield from mine[skip:]

    def state_dict(self) -> dict[str, Any]:
        """``{"seed", "epoch", "global_step"}``: enough to continue the order."""
        return {"seed": self.seed, "epoch": self.epoch, "global_step": int(self.steps()) if self.steps else 0}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue after ``state["global_step"]`` batches (one batch per step)."""
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])
        self._resume_step = int(state["global_step"])


class ResumableLoader(DataLoader):
    """A DataLoader over a :class:`ResumableSampler` whose state Lightning saves in checkpoints
    (a loader with ``state_dict``/``load_state_dict`` is "resumable" to Lightning's fit loop)."""

    def state_dict(self) -> dict[str, Any]:
        """The sampler's state."""
        return self.sampler.state_dict()  # type: ignore[attr-defined]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the sampler's state."""
        self.sampler.load_state_dict(state)  # type: ignore[attr-defined]


def resumable_loader(
    dataset: Any, batch_size: int, seed: int, trainer: L.Trainer | None, drop_last: bool = True, **kwargs: Any
) -> ResumableLoader:
    """A shuffled training loader of ``dataset`` sharded over ``trainer``'s processes (``kwargs`` go to
    ``DataLoader``: ``num_workers``, ``collate_fn`` ...)."""
    rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
    sampler = ResumableSampler(len(dataset), batch_size, seed, drop_last=drop_last, rank=rank, world=world,
                               steps=(lambda: trainer.global_step) if trainer is not None else None)
    return ResumableLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, **kwargs)
