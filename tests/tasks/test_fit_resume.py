"""``fit`` reruns resume from ``last.ckpt`` without losing metrics rows or time, refuse a foreign or
truncated checkpoint in one line, and a full disk keeps the previous checkpoint (eoreps.checkpoints)."""

from __future__ import annotations

import csv
import errno
from pathlib import Path

import lightning as L
import pytest
import torch

from eoreps.cli import main
from eoreps.errors import DataError
from eoreps.tasks.fit import FitConfig, fit


def _cfg(out: Path, **kw) -> FitConfig:
    base = dict(
        backbone="cnn-tiny",
        epochs=3,
        max_train=48,
        max_eval=32,
        batch_size=16,
        simeo_n=160,
        out=str(out),
        patience=10,
    )
    return FitConfig(**{**base, **kw})


class _Stop(L.Callback):
    def on_train_epoch_start(self, trainer, *args) -> None:
        if trainer.current_epoch == 2:
            raise RuntimeError("killed")


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "logs" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_rerun_resumes_with_the_earlier_rows_and_time(tmp_path, monkeypatch):
    import lightning.pytorch.callbacks as callbacks

    real = callbacks.EarlyStopping
    monkeypatch.setattr(callbacks, "EarlyStopping", lambda *a, **k: _Stop())  # killed after 2 epochs
    with pytest.raises(RuntimeError, match="killed"):
        fit(_cfg(tmp_path))
    before = _rows(tmp_path)
    elapsed = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["eoreps"]["elapsed_s"]
    monkeypatch.setattr(callbacks, "EarlyStopping", real)
    result = fit(_cfg(tmp_path))
    after = _rows(tmp_path)
    assert {r["epoch"] for r in before} == {"0", "1"} and after[:len(before)] == before
    assert {r["epoch"] for r in after} == {"0", "1", "2"} and result.epochs == 3
    assert result.seconds > elapsed > 0


def test_foreign_or_truncated_checkpoint_is_one_line(tmp_path, capsys):
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "global_step": 3, "eoreps": {"identity": {
        "task": "segment", "backbone": "cnn-tiny", "modalities": ["s2"], "fusion": "early"}}}, last)
    with pytest.raises(DataError, match="written by task 'segment'; this run has task 'classify'"):
        fit(_cfg(tmp_path))
    last.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SystemExit) as e:
        main(["fit", "--quick", "--out", str(tmp_path)])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert e.value.code == 2 and len(err) == 1 and str(last) in err[0] and "corrupt checkpoint" in err[0], err


def test_disk_full_leaves_no_torn_checkpoint(tmp_path, monkeypatch):
    def full(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(DataError, match="best.ckpt: no space left on device"):
        fit(_cfg(tmp_path, epochs=1))
    assert not list(
        (tmp_path / "checkpoints").iterdir()
    )  # neither a torn best/last.ckpt nor a temporary file


def test_an_end_of_file_error_is_not_reported_as_ctrl_c(tmp_path, monkeypatch, capsys):
    """click turns an EOFError (torch.load of an empty file) into Abort: it printed 'aborted', exit 130."""
    import eoreps.tasks.fit as fit_module

    def eof(*args, **kwargs):
        raise EOFError("Ran out of input")

    monkeypatch.setattr(fit_module, "fit", eof)
    with pytest.raises(EOFError, match="Ran out of input"):
        main(["fit", "--out", str(tmp_path)])
    assert "aborted" not in capsys.readouterr().err
