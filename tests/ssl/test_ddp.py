"""Two gloo processes: negatives are gathered across processes and the loss (and gradient) of the
global batch equals the single-process loss on the same data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent


def test_two_process_loss_equals_single_process(tmp_path: Path) -> None:
    out, init = tmp_path / "ddp.pt", tmp_path / "init"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "_ddp_worker.py"), str(r), "2", str(init), str(out)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for r in range(2)
    ]
    logs = [p.communicate(timeout=1800)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)
    ddp = torch.load(out)

    sys.path.insert(0, str(HERE))
    try:
        from _ddp_worker import loss_and_grads
    finally:
        sys.path.remove(str(HERE))
    for name in ("simclr", "multimodal"):
        loss, cands, grads = loss_and_grads(name, 0, 8)  # one process, the whole batch of 8
        _, local_cands, _ = loss_and_grads(name, 0, 4)  # one process, a local batch of 4
        assert ddp[name]["num_candidates"] == cands == 2 * 8 - 1  # gathered: 2 x 8 projections - itself
        assert local_cands == 2 * 4 - 1
        assert ddp[name]["loss"].item() == pytest.approx(loss.item(), abs=1e-5)
        torch.testing.assert_close(ddp[name]["grads"], grads, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_lightning_ddp_spawn_two_cpu_processes(simeo_small: Path, tmp_path: Path) -> None:
    """The runner under Lightning DDP (2 gloo processes): the step budget is per process, export works."""
    sys.path.insert(0, str(HERE))
    try:
        from _pretrain_helpers import tiny_config
    finally:
        sys.path.remove(str(HERE))
    from eoreps.models import load_backbone
    from eoreps.ssl.pretrain import run_pretrain

    cfg = tiny_config("multimodal", simeo_small, tmp_path, devices=2, strategy="ddp_spawn", max_samples=64,
                      batch_size=16)
    result = run_pretrain(cfg)
    assert result.encoders and load_backbone(result.encoders["s2"]).card["method"] == "multimodal"
    summary = (tmp_path / "pretrain.json").read_text()
    assert '"world_size": 2' in summary and '"max_steps": 2' in summary  # 64 samples / 2 processes / 16
    # the spawning parent's trainer never steps: the count comes from the children's final checkpoint
    assert '"steps": 2' in summary and result.steps == 2
    assert load_backbone(result.encoders["s2"]).card["steps"] == 2
