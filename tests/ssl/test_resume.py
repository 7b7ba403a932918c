"""A pretraining killed (SIGKILL) mid-epoch resumes from its last checkpoint and ends after the same
total number of steps as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
STEPS_PER_EPOCH = 128 // 16  # max_samples 128, batch 16 (see _resume_driver.py)
TOTAL = 2 * STEPS_PER_EPOCH


def _run(data: Path, out: Path, resume: bool, delay: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE / "_resume_driver.py"), str(data), str(out),
                             "1" if resume else "0", str(delay)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def test_kill_mid_epoch_then_resume(simeo_small: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    last = out / "checkpoints" / "last.ckpt"
    proc = _run(simeo_small, out, resume=False, delay=0.5)
    deadline = time.time() + 600
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        # ModelCheckpoint(filename="{step}") keeps the newest "step=N.ckpt" beside last.ckpt; the name
        # tells the step without unpickling (which would import Lightning here, slowly)
        steps = [int(p.stem.split("=")[1]) for p in last.parent.glob("step=*.ckpt")] if last.is_file() else []
        if steps and max(steps) >= 3:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed_at = max(steps)
            break
        time.sleep(0.05)
    assert killed_at is not None, proc.communicate()[0].decode()[-3000:]
    assert 0 < killed_at < TOTAL and killed_at % STEPS_PER_EPOCH != 0  # mid-epoch
    assert not (out / "pretrain.json").exists()  # the killed run did not finish

    proc = _run(simeo_small, out, resume=True, delay=0.0)
    log = proc.communicate(timeout=600)[0].decode()
    assert proc.returncode == 0, log[-3000:]
    summary = json.loads((out / "pretrain.json").read_text())
    assert summary["steps"] == summary["max_steps"] == TOTAL
    from eoreps.models import load_backbone

    assert load_backbone(out / "backbone.safetensors").card["steps"] == TOTAL
