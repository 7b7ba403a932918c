"""Checkpoints survive a full disk, foreign or truncated checkpoints are refused in one line, and a resumed
pretraining sees the samples, metrics rows and wall time of an uninterrupted one (eoreps.checkpoints)."""

from __future__ import annotations

import csv
import errno
import io
import json
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from eoreps.cli import main

HERE = Path(__file__).parent


def _cli(args: list[str], capsys) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return int(e.value.code), [ln for ln in err.splitlines() if ln.strip()]


def _pretrain_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "pretrain",
        "--method",
        "simclr",
        "--data",
        str(data),
        "--modalities",
        "s2,s1",
        "--backbone",
        "cnn-tiny",
        "--quick",
        "--no-knn",
        "--batch-size",
        "16",
        "--max-samples",
        "64",
        "--accelerator",
        "cpu",
        "--out",
        str(out),
        *extra,
    ]


def test_disk_full_keeps_the_previous_checkpoint_and_says_one_line(
    simeo_small, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "run"
    last = out / "checkpoints" / "last.ckpt"
    real_save, calls, before = torch.save, [], {}

    def save(obj, f, *a, **k):  # step=1.ckpt and last.ckpt succeed, the third write fills the disk half-way
        calls.append(f)
        if len(calls) != 3:
            return real_save(obj, f, *a, **k)
        before["bytes"] = last.read_bytes()
        buf = io.BytesIO()
        real_save(obj, buf)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2]) if hasattr(f, "write") else None
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", save)
    code, err = _cli(_pretrain_args(simeo_small, out, "--checkpoint-every", "1"), capsys)
    assert code == 2 and len(err) == 1, err
    assert "no space left on device" in err[0] and str(out / "checkpoints") in err[0], err
    assert last.read_bytes() == before["bytes"] and len(before["bytes"]) > 0  # the good one, untouched
    assert not list(last.parent.glob(".*.tmp"))  # no temporary file left behind
    monkeypatch.setattr(torch, "save", real_save)
    code, _ = _cli(_pretrain_args(simeo_small, out, "--checkpoint-every", "1", "--resume"), capsys)
    assert code == 0  # the kept checkpoint resumes


def test_truncated_checkpoint_is_one_line_not_aborted(simeo_small, tmp_path, capsys):
    """An empty last.ckpt (what a full disk left before) used to print 'eoreps: aborted', exit 130."""
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"")
    code, err = _cli(_pretrain_args(simeo_small, tmp_path, "--resume"), capsys)
    assert code == 2 and len(err) == 1 and str(last) in err[0] and "corrupt checkpoint" in err[0], err


def test_foreign_checkpoint_names_what_differs(simeo_small, tmp_path, capsys):
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "global_step": 3, "eoreps": {"identity": {
        "method": "byol", "backbone": "cnn-tiny", "modalities": ["s2", "s1"]}, "elapsed_s": 1.0}}, last)
    code, err = _cli(_pretrain_args(simeo_small, tmp_path, "--resume"), capsys)
    assert code == 2 and len(err) == 1, err
    assert str(last) in err[0] and "'byol'" in err[0] and "'simclr'" in err[0] and "drop --resume" in err[0]
    assert "cnn-tiny" not in err[0]  # only what differs


def test_resume_without_checkpoint_says_it_starts_fresh(simeo_small, tmp_path):
    sys.path.insert(0, str(HERE))
    try:
        from _pretrain_helpers import tiny_config
    finally:
        sys.path.remove(str(HERE))
    from eoreps.ssl.pretrain import _resume_point

    with pytest.warns(UserWarning, match="no checkpoint at .*last.ckpt; starting from scratch"):
        assert _resume_point(tiny_config("simclr", simeo_small, tmp_path, resume=True),
                             tmp_path / "checkpoints" / "last.ckpt") is None


class _Stop(L.Callback):
    """Raise at the start of step ``at`` (after the checkpoint of step ``at``), like a kill."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer, *args) -> None:
        if trainer.global_step == self.at:
            raise RuntimeError("killed")


def test_resumed_run_sees_the_uninterrupted_order_rows_and_time(simeo_small, tmp_path, monkeypatch):
    sys.path.insert(0, str(HERE))
    try:
        from _pretrain_helpers import tiny_config
    finally:
        sys.path.remove(str(HERE))
    from eoreps.ssl import data as ssl_data
    from eoreps.ssl.pretrain import run_pretrain

    fetched: list[list[int]] = []
    real = ssl_data.BatchDataset.__getitems__
    monkeypatch.setattr(ssl_data.BatchDataset, "__getitems__", lambda self, idx: fetched.append(list(idx))
                        or real(self, idx))

    # the in-memory fast path's resumable sampler (the streamed path's resume: tests/ssl/test_resume.py)
    def cfg(out: Path, resume: bool = False):  # 2 epochs of 4 steps, a checkpoint every 3 steps
        return tiny_config(
            "simclr",
            simeo_small,
            out,
            epochs=2,
            max_samples=64,
            batch_size=16,
            checkpoint_every=3,
            resume=resume,
            quick=False,
            loader="memory",
        )

    whole = run_pretrain(cfg(tmp_path / "a"))
    order = list(fetched)
    # in memory "auto" is 0 workers (a batch is one index_select), recorded like a stream's count
    assert json.loads((tmp_path / "a" / "pretrain.json").read_text())["data"]["loader_workers"] == 0
    fetched.clear()
    with pytest.raises(RuntimeError, match="killed"):
        run_pretrain(cfg(tmp_path / "b"), callbacks=[_Stop(6)])  # mid second epoch
    first = fetched[:6]  # the loader fetches one batch ahead of training
    rows_before = _rows(tmp_path / "b")
    fetched.clear()
    resumed = run_pretrain(cfg(tmp_path / "b", resume=True))
    assert len(order) == 8 and first + fetched == order
    assert resumed.steps == whole.steps == 8
    rows_after = _rows(tmp_path / "b")
    assert rows_before and rows_after[:len(rows_before)] == rows_before  # the pre-kill rows are kept
    assert [(r["epoch"], r["step"]) for r in rows_after] == [
        (r["epoch"], r["step"]) for r in _rows(tmp_path / "a")
    ]
    part1 = torch.load(tmp_path / "b" / "checkpoints" / "step=6.ckpt", weights_only=False)["eoreps"][
        "elapsed_s"
    ]
    assert resumed.wall_time_s > part1 > 0


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "logs" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_mae_without_backbone_uses_its_default_vit(simeo_small, tmp_path, capsys):
    """MAE needs a ViT: with no --backbone it gets one sized for the data (it used to get
    cnn-small and fail)."""
    with pytest.raises(SystemExit) as e:
        main(
            [
                "pretrain",
                "--method",
                "mae",
                "--data",
                str(simeo_small),
                "--modalities",
                "s2",
                "--quick",
                "--no-knn",
                "--batch-size",
                "16",
                "--max-samples",
                "16",
                "--accelerator",
                "cpu",
                "--out",
                str(tmp_path),
            ]
        )
    assert e.value.code == 0, capsys.readouterr().err[-2000:]
    from eoreps.models import load_backbone

    card = load_backbone(tmp_path / "backbone.safetensors").card
    assert card["config"]["backbone"] == "timm:vit_tiny_patch16_224"
    assert card["config"]["backbone_kwargs"] == {"img_size": 32, "patch_size": 4}
