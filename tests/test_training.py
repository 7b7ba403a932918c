"""eoreps.training: the one trainer builder of pretrain, fit and hyper fit (issue 21, item 3)."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from eoreps.checkpoints import AtomicCheckpointIO, ResumableCSVLogger, RunState
from eoreps.errors import DataError
from eoreps.training import build_run, resume_point

SRC = Path(__file__).resolve().parents[1] / "src" / "eoreps"


class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)

    def training_step(self, batch, _i):
        loss = self.lin(batch[0]).pow(2).mean()
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _run(out: Path, steps: int, identity: dict, resume=None):
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", save_last=True, every_n_train_steps=1)
    run = build_run(out, identity, resume=resume, checkpoint=ckpt, quiet=True, max_steps=steps,
                    accelerator="cpu", log_every_n_steps=1, enable_checkpointing=True)
    dl = DataLoader(TensorDataset(torch.randn(16, 2)), batch_size=4)
    run.fit(_Tiny(), dl)
    return run


def _steps(out: Path) -> list[int]:
    with open(out / "logs" / "metrics.csv", newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def test_build_run_assembles_the_shared_parts_and_resumes(tmp_path):
    first = _run(tmp_path, 3, {"kind": "toy"})
    t = first.trainer
    assert isinstance(t.logger, ResumableCSVLogger) and not t.progress_bar_callback
    assert isinstance(t.strategy.checkpoint_io, AtomicCheckpointIO)
    assert sum(isinstance(c, RunState) for c in t.callbacks) == 1
    assert first.resume is None and first.offset_s == 0
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert _steps(tmp_path) == [0, 1, 2]

    at = resume_point(last, {"kind": "toy"}, "delete it")
    assert at is not None and at.global_step == 3 and at.elapsed_s > 0
    second = _run(tmp_path, 5, {"kind": "toy"}, at)
    assert second.trainer.global_step == 5 and second.offset_s == at.elapsed_s
    assert second.elapsed() > at.elapsed_s
    assert _steps(tmp_path) == [0, 1, 2, 3, 4]  # the rows before the checkpoint are kept, none twice

    with pytest.raises(DataError, match="kind 'toy'.*delete it"):
        resume_point(last, {"kind": "other"}, "delete it")
    assert resume_point(last, {"kind": "other"}, "x", wanted=False) is None
    with pytest.warns(UserWarning, match="starting from scratch"):
        assert resume_point(tmp_path / "none.ckpt", {}, "x", warn_missing=True) is None


@pytest.mark.parametrize("module", ["ssl/pretrain.py", "tasks/fit.py", "hyper/train.py"])
def test_the_three_trainers_use_the_one_builder(module):
    tree = ast.parse((SRC / module).read_text())
    calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert "build_run" in calls
    assert not calls & {"L.Trainer", "Trainer", "CSVLogger", "ResumableCSVLogger", "AtomicCheckpointIO",
                        "RunState", "progress_callbacks"}


def test_precision_is_stored_short_and_converted_only_for_the_trainer(tmp_path):
    """Configs store ``fp32``/``bf16``; the Trainer gets Lightning's spelling; a checkpoint whose identity
    recorded ``32-true`` (before the one vocabulary) still resumes a run that says ``fp32``."""
    from eoreps.ssl.pretrain import PretrainConfig
    from eoreps.tasks.fit import FitConfig

    assert FitConfig(precision="bf16-mixed").precision == "bf16" and FitConfig().precision == "fp32"
    assert PretrainConfig(precision="32-true").precision == "fp32"
    assert PretrainConfig(precision="auto").precision == "fp32"
    run = build_run(tmp_path, {}, quiet=True, accelerator="cpu", precision="bf16", max_steps=1)
    assert run.trainer.precision == "bf16-mixed"
    _run(tmp_path / "old", 2, {"kind": "toy", "precision": "32-true"})
    last = tmp_path / "old" / "checkpoints" / "last.ckpt"
    assert resume_point(last, {"kind": "toy", "precision": "fp32"}, "x") is not None
    with pytest.raises(DataError, match="precision '32-true'"):
        resume_point(last, {"kind": "toy", "precision": "bf16"}, "x")
