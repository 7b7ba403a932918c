"""``num_workers="auto"``: how many loader workers stream a pack (eoreps.data.loader_workers)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from eoreps.cli import main
from eoreps.data.loader_workers import (
    AUTO,
    ENV,
    MAX_AUTO_WORKERS,
    RUN_FILE,
    agree_workers,
    auto_workers,
    available_cpus,
    parse_workers,
    resolve_workers,
    settle_workers,
)
from eoreps.errors import ConfigError


def test_cpu_training_gets_the_cores_its_threads_leave_free():
    assert auto_workers(True, training_threads=2, cpus=2) == 0  # the 2-core VM: read between steps
    assert auto_workers(True, training_threads=1, cpus=2) == 1
    assert auto_workers(True, training_threads=12, cpus=16) == 4
    assert auto_workers(True, training_threads=4, cpus=64) == MAX_AUTO_WORKERS
    assert auto_workers(True, training_threads=1, cpus=8, local_processes=4) == 1  # 2 cores per DDP rank
    assert auto_workers(True, training_threads=0, cpus=1) == 0


def test_accelerator_training_keeps_one_core_for_the_device():
    assert auto_workers(False, training_threads=2, cpus=2) == 1
    assert auto_workers(False, training_threads=16, cpus=6) == 5
    assert auto_workers(False, training_threads=1, cpus=64) == MAX_AUTO_WORKERS
    assert auto_workers(False, training_threads=1, cpus=16, local_processes=4) == 3
    assert auto_workers(False, training_threads=1, cpus=1) == 1


def _machine(monkeypatch, mask: int, node: int) -> None:
    """This process may run on ``mask`` of the node's ``node`` CPUs; ``auto`` follows the rule (no knob)."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(mask)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: node)
    monkeypatch.delenv(ENV, raising=False)


def test_cpus_are_the_affinity_mask_not_the_machine(monkeypatch):
    _machine(monkeypatch, mask=6, node=64)  # a container / taskset limit
    assert available_cpus() == 6


def test_the_mask_is_shared_among_ranks_only_when_it_covers_the_node(monkeypatch):
    _machine(monkeypatch, mask=16, node=16)  # the whole node: 4 ranks share it
    assert available_cpus(local_processes=4) == 4
    assert auto_workers(True, training_threads=1, local_processes=4) == 3
    _machine(monkeypatch, mask=4, node=16)  # a launcher bound this rank to its own 4 cores
    assert available_cpus(local_processes=4) == 4
    assert auto_workers(True, training_threads=1, local_processes=4) == 3


def test_the_env_knob_sets_what_auto_means(monkeypatch):
    _machine(monkeypatch, mask=16, node=16)
    torch.set_num_threads(2)
    assert resolve_workers(AUTO) == MAX_AUTO_WORKERS  # 16 cores - 2 threads, capped
    monkeypatch.setenv(ENV, "0")  # what tests/conftest.py sets for the suite
    assert resolve_workers(AUTO) == 0 and resolve_workers(3) == 3  # an explicit count stays
    monkeypatch.setenv(ENV, "5")
    assert resolve_workers(AUTO) == 5
    monkeypatch.setenv(ENV, "lots")
    with pytest.raises(ConfigError, match=f"{ENV}=lots"):
        resolve_workers(AUTO)


def test_a_resume_keeps_the_first_runs_workers(monkeypatch, tmp_path, capsys):
    torch.set_num_threads(2)
    _machine(monkeypatch, mask=8, node=8)
    assert settle_workers(AUTO, tmp_path, resuming=False) == 6
    _machine(monkeypatch, mask=3, node=3)  # resumed on a smaller machine: auto alone would give 1
    assert settle_workers(AUTO, tmp_path, resuming=True) == 6
    (tmp_path / "fresh").mkdir()
    assert settle_workers(AUTO, tmp_path / "fresh", resuming=False) == 1
    assert capsys.readouterr().out == ""
    assert settle_workers(2, tmp_path, resuming=True) == 2  # an explicit other count: used, with a warning
    out = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert len(out) == 1 and "6 loader workers" in out[0] and "--num-workers 6" in out[0]
    assert json.loads((tmp_path / RUN_FILE).read_text()) == {"loader_workers": 2, "asked": 2}
    assert settle_workers(AUTO, tmp_path, resuming=True) == 2  # the next resume keeps the last count


class _Strategy:
    """Stands for a DDP strategy: ``reduce(..., "min")`` over the ranks' values."""

    root_device = torch.device("cpu")

    def __init__(self, others: list[int]) -> None:
        self.others = others

    def reduce(self, tensor, reduce_op="mean"):
        assert reduce_op == "min"
        return torch.stack([tensor, *map(torch.tensor, self.others)]).min()


class _Trainer:
    def __init__(self, others: list[int], rank: int) -> None:
        self.strategy, self.world_size, self.is_global_zero = _Strategy(others), 1 + len(others), rank == 0


def test_every_rank_streams_with_the_smallest_count(tmp_path):
    record = tmp_path / RUN_FILE
    record.write_text(json.dumps({"loader_workers": 3, "asked": "auto"}))
    assert agree_workers(3, _Trainer([3, 3], rank=1), record) == 3
    assert agree_workers(3, _Trainer([1, 3], rank=1), record) == 1
    assert json.loads(record.read_text())["loader_workers"] == 3  # only rank 0 writes
    assert agree_workers(3, _Trainer([3, 1], rank=0), record) == 1
    assert json.loads(record.read_text()) == {"loader_workers": 1, "asked": "auto"}
    assert agree_workers(4, None) == 4  # one process


@pytest.mark.parametrize("spelling", ["auto", "AUTO", 0, "0"])
def test_study_digest_ignores_how_the_default_workers_are_spelled(spelling):
    from eoreps.evaluation.pretraining import _digest
    from eoreps.ssl.pretrain import PretrainConfig

    # the recorded digest of this study pretraining (tests/test_digest.py): a change would rmtree the run
    cfg = PretrainConfig(data="/d", out="/o", method="rotation", epochs=3, num_workers=spelling)
    assert _digest(cfg) == "236c200057dc2218"


def test_parse_workers():
    assert parse_workers("auto") == "auto" and parse_workers("AUTO") == "auto"
    assert parse_workers("3") == 3 and parse_workers(0) == 0
    for bad in ("-1", "many", 1.5, True, None):
        with pytest.raises(ConfigError, match=r"num_workers=.*>= 0 or 'auto'"):
            parse_workers(bad)


def test_bad_num_workers_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["pretrain", "--quick", "--num-workers", "many", "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err and "many" in lines[0] and "workers" in lines[0]
