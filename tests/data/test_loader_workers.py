"""``num_workers="auto"``: how many loader workers stream a pack (eoreps.data.loader_workers)."""

from __future__ import annotations

import os

import pytest

from eoreps.cli import main
from eoreps.data.loader_workers import MAX_AUTO_WORKERS, auto_workers, available_cpus, parse_workers
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


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no affinity mask on this OS")
def test_cpus_are_the_affinity_mask_not_the_machine():
    assert available_cpus() == len(os.sched_getaffinity(0))


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
