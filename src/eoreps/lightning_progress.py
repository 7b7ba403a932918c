"""Lightning progress bars for eoreps trainers, built by :func:`progress_callbacks` (here, above
:mod:`eoreps.progress`, which holds the loops' bars and lines and imports no Lightning).

* :class:`StepTQDMProgressBar` (terminal): Lightning's tqdm bar, but a run budgeted in steps
  (``max_steps`` with ``max_epochs=-1``, as ``eoreps pretrain`` does) gets one bar over all steps
  (``train: 40/800``) instead of per-epoch bars labelled ``Epoch 0/-2``; epoch-budgeted runs read
  ``Epoch k/N`` (1-based).
* :class:`LineProgressBar` (logs, pipes): plain lines every 5 % of the steps, no carriage returns.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar

from eoreps.progress import LineReporter, interactive, progress_enabled


def epoch_budget(trainer: pl.Trainer) -> int | None:
    """Number of epochs the trainer may run (None when unbounded, e.g. ``max_epochs=-1``)."""
    e = trainer.max_epochs
    return int(e) if e is not None and e > 0 else None


def total_steps(trainer: pl.Trainer) -> int | None:
    """Optimizer steps the run will take at most: ``max_steps`` or epochs x batches, whichever is smaller."""
    limits = []
    if trainer.max_steps is not None and trainer.max_steps > 0:
        limits.append(int(trainer.max_steps))
    batches = trainer.num_training_batches
    epochs = epoch_budget(trainer)
    if epochs is not None and isinstance(batches, (int, float)) and math.isfinite(batches) and batches > 0:
        accumulate = max(1, int(getattr(trainer, "accumulate_grad_batches", 1)))
        limits.append(epochs * math.ceil(int(batches) / accumulate))
    return min(limits) if limits else None


def step_budgeted(trainer: pl.Trainer) -> bool:
    """True when ``max_steps`` (not ``max_epochs``) ends the run."""
    steps = total_steps(trainer)
    return steps is not None and trainer.max_steps is not None and steps == trainer.max_steps


def epoch_label(trainer: pl.Trainer) -> str:
    """``epoch k/N`` (1-based; ``epoch k`` when the epoch count is unbounded)."""
    epochs = epoch_budget(trainer)
    k = trainer.current_epoch + 1 if epochs is None else min(trainer.current_epoch + 1, epochs)
    return f"epoch {k}" + (f"/{epochs}" if epochs is not None else "")


def _metrics_text(bar: ProgressBar, trainer: pl.Trainer, module: pl.LightningModule) -> str:
    items = [(k, v) for k, v in bar.get_metrics(trainer, module).items() if k != "v_num"]
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)


class StepTQDMProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar with a step total for step-budgeted runs and ``Epoch k/N`` labels otherwise."""

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if not step_budgeted(trainer):
            super().on_train_epoch_start(trainer, *args)
            self.train_progress_bar.set_description(epoch_label(trainer).capitalize())
            return
        bar = self.train_progress_bar
        if bar.total != trainer.max_steps:  # one bar over the whole run, not reset per epoch
            bar.reset(total=trainer.max_steps)
            bar.initial = 0
            bar.n = trainer.global_step
        bar.set_description(f"Train ({epoch_label(trainer)})")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not step_budgeted(trainer):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            return
        bar = self.train_progress_bar
        if bar is not None and self._should_update(trainer.global_step, bar.total):
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
            bar.refresh()


class LineProgressBar(ProgressBar):
    """Plain progress lines for non-terminal output:
    ``train: 40/800 steps (5%), 3.1 s, epoch 1/10, loss=...``."""

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._reporter: LineReporter | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._enabled:
            self._reporter = LineReporter("train", total_steps(trainer), "steps")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self._enabled and self._reporter is not None and self._reporter.due(trainer.global_step):
            self._reporter.update(
                trainer.global_step, self._extra(trainer, pl_module)
            )  # metrics only when due

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._enabled and self._reporter is not None:
            self._reporter.close(trainer.global_step, self._extra(trainer, pl_module))
            self._reporter = None

    def _extra(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> str:
        parts = (epoch_label(trainer), _metrics_text(self, trainer, pl_module))
        return ", ".join(t for t in parts if t)


def progress_callbacks(enabled: bool = True) -> list[Any]:
    """The Lightning progress-bar callback for a trainer (empty when disabled): append it to the trainer's
    callbacks and pass ``enable_progress_bar=bool(result)``.

    On a terminal: a tqdm bar that counts steps for step-budgeted runs (``max_steps``, where Lightning would
    show ``Epoch 0/-2``) and ``Epoch k/N`` otherwise; elsewhere plain lines every 5 % of the steps.
    """
    if not (enabled and progress_enabled()):
        return []
    return [StepTQDMProgressBar() if interactive() else LineProgressBar()]
