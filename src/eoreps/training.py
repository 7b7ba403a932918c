"""One builder for the Lightning runs of the three pillars: trainer, CSV log, checkpoints and resume.

``ssl/pretrain.py`` (self-supervised pretraining), ``tasks/fit.py`` (supervised fit) and
``hyper/train.py`` (hyper-representations) all train through :func:`build_run`, which assembles

* the checkpoint writer :class:`~eoreps.checkpoints.AtomicCheckpointIO` (a kill or a full disk keeps the
  previous checkpoint);
* the log :class:`~eoreps.checkpoints.ResumableCSVLogger` (``out/logs/metrics.csv``; a resumed run keeps
  the rows logged before its checkpoint);
* :class:`~eoreps.checkpoints.RunState` (the run's identity and elapsed training time in every
  checkpoint, so a resumed run reports the time of all its parts);
* the progress bar of :func:`eoreps.lightning_progress.progress_callbacks` (``enable_progress_bar``
  follows it);
* the caller's ``ModelCheckpoint`` and other callbacks, in the order given;

and :func:`resume_point` decides where a run continues (a checked checkpoint, or from scratch).
:meth:`Run.fit` then passes ``ckpt_path`` to ``Trainer.fit``. Pillar-specific trainer options
(``max_steps``, precision, strategy, gradient clipping ...) are passed through unchanged.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L

from eoreps.checkpoints import AtomicCheckpointIO, ResumableCSVLogger, ResumePoint, RunState, check_resume
from eoreps.lightning_progress import progress_callbacks

__all__ = ["Run", "build_run", "resume_point"]


def resume_point(last: Path, identity: dict[str, Any], fix: str, *, wanted: bool = True,
                 warn_missing: bool = False) -> ResumePoint | None:
    """Where a run continues: ``last`` checked against ``identity`` (one-line DataError when corrupt or
    written by another run; ``fix`` ends that line), or ``None`` to start from scratch.

    Args:
        wanted: False when the run must not resume (e.g. ``pretrain`` without ``--resume``).
        warn_missing: warn that the run starts from scratch when ``last`` does not exist.
    """
    if not wanted:
        return None
    if not last.is_file():
        if warn_missing:
            warnings.warn(f"resume=True: no checkpoint at {last}; starting from scratch", stacklevel=3)
        return None
    return check_resume(last, identity, fix)


@dataclass
class Run:
    """A built trainer with what it resumes from and its time bookkeeping."""

    trainer: L.Trainer
    resume: ResumePoint | None
    state: RunState

    @property
    def offset_s(self) -> float:
        """Training seconds of the earlier runs this one resumes (0 for a fresh run)."""
        return self.state.offset_s

    def elapsed(self) -> float:
        """Training seconds so far, the resumed runs included."""
        return self.state.elapsed()

    def fit(self, module: L.LightningModule, *args: Any, **kwargs: Any) -> None:
        """``trainer.fit(module, *args, ckpt_path=<the resume checkpoint or None>, **kwargs)``."""
        self.trainer.fit(module, *args, ckpt_path=str(self.resume.path) if self.resume else None, **kwargs)


def build_run(out: Path, identity: dict[str, Any], *, resume: ResumePoint | None = None,
              checkpoint: L.Callback | None = None, callbacks: list[Any] | None = None, quiet: bool = False,
              final: Path | None = None, t0: float | None = None, **trainer_options: Any) -> Run:
    """A Lightning trainer writing into ``out`` with the shared plugins, log and callbacks.

    Args:
        out: the run folder (``logs/metrics.csv`` goes there).
        identity: what a resumed run must share with its checkpoint (stored by :class:`RunState`).
        resume: from :func:`resume_point` (its step trims ``metrics.csv``, its time is carried over).
        checkpoint: the run's ``ModelCheckpoint`` (first callback), or None.
        callbacks: further callbacks, after :class:`RunState` and before the progress bar.
        quiet: no progress bar.
        final: also write this checkpoint when training ends (see :class:`RunState`).
        t0: ``time.perf_counter()`` at the start of the run (default: now).
        trainer_options: the pillar's own ``lightning.Trainer`` arguments; ``precision`` in any spelling of
            :mod:`eoreps.vocabulary` (configs store ``fp32``/``bf16``; the Trainer gets
            ``32-true``/``bf16-mixed``).
    """
    from eoreps.vocabulary import lightning_precision

    if trainer_options.get("precision") is not None:
        trainer_options["precision"] = lightning_precision(trainer_options["precision"],
                                                           str(trainer_options.get("accelerator", "cpu")))
    state = RunState(identity, time.perf_counter() if t0 is None else t0,
                     resume.elapsed_s if resume else 0.0, final=final)
    bars = progress_callbacks(not quiet)
    trainer = L.Trainer(
        callbacks=[*([checkpoint] if checkpoint is not None else []), state, *(callbacks or []), *bars],
        plugins=[AtomicCheckpointIO()],
        logger=ResumableCSVLogger(out, resume.global_step if resume else None),
        enable_progress_bar=bool(bars), enable_model_summary=False, **trainer_options)
    return Run(trainer, resume, state)
