"""Progress output: plain bounded lines when stderr is not a terminal, correct totals for step budgets."""

from __future__ import annotations

import io
import sys

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from eoreps import progress as P
from eoreps.lightning_progress import (
    LineProgressBar,
    StepTQDMProgressBar,
    progress_callbacks,
    step_budgeted,
    total_steps,
)


class _Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)

    def training_step(self, batch, _):
        loss = self.lin(batch[0]).pow(2).mean()
        self.log("loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _fit(bars, **limits) -> pl.Trainer:
    dl = DataLoader(TensorDataset(torch.randn(40, 2)), batch_size=4)  # 10 batches per epoch
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=bars,
        enable_progress_bar=bool(bars),
        **limits,
    )
    trainer.fit(_Tiny(), dl)
    return trainer


@pytest.fixture
def progress_on(monkeypatch):
    monkeypatch.setenv("EOREPS_NO_PROGRESS", "0")
    monkeypatch.setattr(P, "LINE_MIN_INTERVAL_S", 0.0)  # tests run in milliseconds: a line per 5 %


def test_quick_loops_print_nothing_in_logs(monkeypatch, capsys):
    monkeypatch.setenv("EOREPS_NO_PROGRESS", "0")
    assert list(P.progress(range(100), desc="fast")) == list(range(100))
    assert capsys.readouterr().err == ""  # under LINE_MIN_INTERVAL_S: no line at all


def test_line_reporter_rate_limited_and_unknown_total():
    out = io.StringIO()
    r = P.LineReporter("slow", None, "batch", interval_s=0.0, stream=out, min_interval_s=0.0)
    for n in (1, 2):
        r.update(n)
    r.close(2)
    lines = out.getvalue().splitlines()
    assert [ln.split(",")[0] for ln in lines] == ["slow: 1 batch", "slow: 2 batch"]  # no total, no percent
    out2 = io.StringIO()
    r2 = P.LineReporter("gated", 100, stream=out2, min_interval_s=3600.0)
    for n in range(1, 101):
        r2.update(n)
    r2.close(100)
    assert out2.getvalue() == ""  # every 5 % step fell inside the one-hour minimum interval


def test_progress_lines_when_not_a_terminal(progress_on, capsys):
    assert not P.interactive()  # pytest's captured stderr is not a tty
    assert list(P.progress(range(1000), desc="cells")) == list(range(1000))
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and 1 < len(lines) <= 21
    assert lines[0].startswith("cells: 50/1000 it (5%)") and lines[-1].startswith(
        "cells: 1000/1000 it (100%)"
    )


def test_progress_disabled_prints_nothing(monkeypatch, capsys):
    monkeypatch.setenv("EOREPS_NO_PROGRESS", "1")
    assert list(P.progress(iter(range(5)), desc="x")) == [0, 1, 2, 3, 4]
    assert capsys.readouterr().err == ""
    assert progress_callbacks() == []


def test_lightning_step_budget_lines(progress_on, capsys):
    bars = progress_callbacks()
    assert len(bars) == 1 and isinstance(bars[0], LineProgressBar)
    trainer = _fit(bars, max_steps=25, max_epochs=-1)
    assert trainer.global_step == 25 and total_steps(trainer) == 25 and step_budgeted(trainer)
    captured = capsys.readouterr()
    err = captured.err + captured.out
    lines = [ln for ln in err.splitlines() if ln.startswith("train:")]
    assert "\r" not in err and "/-2" not in err and 1 < len(lines) <= 21
    assert (
        lines[-1].startswith("train: 25/25 steps (100%)") and "epoch 3" in lines[-1] and "loss=" in lines[-1]
    )


def test_lightning_epoch_budget_total_and_label(progress_on, capsys):
    trainer = _fit([LineProgressBar()], max_epochs=3)
    assert total_steps(trainer) == 30 and not step_budgeted(trainer)
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("train: 30/30 steps (100%)") and "epoch 3/3" in last


def test_tqdm_bar_counts_steps_for_step_budget(monkeypatch, progress_on):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)  # Lightning's tqdm bars write to stdout
    bar = StepTQDMProgressBar()
    trainer = _fit([bar], max_steps=25, max_epochs=-1)
    text = out.getvalue()
    assert trainer.global_step == 25
    assert "25/25" in text and "Epoch 0/-2" not in text and "/-2" not in text and "Train (epoch 3)" in text


def test_nested_loops_report_the_outer_loop_only(progress_on, capsys):
    for _ in P.progress(range(4), desc="cells"):
        assert sum(P.progress(range(50), desc="steps")) == 1225
    lines = capsys.readouterr().err.splitlines()
    assert [ln.split(",")[0] for ln in lines] == [f"cells: {i}/4 it ({25 * i}%)" for i in range(1, 5)]
    assert P._depth == 0
