"""``--backend ray`` resources: CPUs of a local Ray, threads of its tasks, CPU seconds its workers spend."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from eoreps.errors import ConfigError
from eoreps.zoo.build import BuildConfig
from eoreps.zoo.ray_backend import _train_chunk_remote, local_ray_cpus, run_chunks_ray


def test_local_ray_cpus_default_to_torch_threads_and_follow_ray_cpus(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert local_ray_cpus(BuildConfig(out=Path("z"))) == 1  # as before: one CPU per torch thread
    assert local_ray_cpus(BuildConfig(out=Path("z"), ray_cpus=2)) == 2  # two members at a time
    assert local_ray_cpus(BuildConfig(out=Path("z"), ray_cpus=1, ray_threads=2)) == 2  # one task must fit


@pytest.mark.parametrize("field,value", [("ray_cpus", 0), ("ray_threads", 0)])
def test_bad_ray_resources_are_one_line(field, value):
    with pytest.raises(ConfigError, match=f"^{field}={value} must be >= 1$"):
        BuildConfig(out=Path("z"), **{field: value}).validate()


def test_run_chunks_ray_starts_a_local_ray_with_ray_cpus(monkeypatch):
    ray = pytest.importorskip("ray")
    seen: dict = {}

    class Started(Exception):
        pass

    def fake_init(**kwargs):  # record what a local Ray would get; stop before any task runs
        seen.update(kwargs)
        raise Started

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", fake_init)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)  # the benchmark's --threads 1
    with pytest.raises(Started):
        run_chunks_ray(None, None, [], [], None, BuildConfig(out=Path("z"), backend="ray", ray_cpus=2), {})
    assert seen["num_cpus"] == 2 and "address" not in seen


def test_remote_task_runs_at_its_threads_and_reports_its_cpu_seconds():
    seen: dict = {}

    def runner(arch, members, data, options, epochs, seed, sink, extra, state):
        seen["threads"] = torch.get_num_threads()
        t = time.process_time()
        while time.process_time() - t < 0.2:  # burn 0.2 s of this process's CPU
            pass
        sink(0, torch.zeros(3), [{"model_id": 0}], {})
        return 7

    before = torch.get_num_threads()
    try:
        out, images, cpu_s = _train_chunk_remote(None, [], None, None, 0, 0, {}, 2, runner)
    finally:
        torch.set_num_threads(before)
    assert seen["threads"] == 2 and images == 7 and len(out) == 1
    assert 0.19 <= cpu_s < 5.0


def test_zoo_build_options_pass_ray_resources_through(tmp_path):
    from eoreps.zoo.build_options import BuildOptions

    cfg = BuildOptions(backbone="cnn-small", dataset="simeo", backend="ray", ray_cpus=2, ray_threads=1
                       ).to_config(tmp_path / "z")
    assert (cfg.ray_cpus, cfg.ray_threads) == (2, 1)


def test_cli_bad_ray_cpus_is_one_line(tmp_path, capsys):
    from eoreps.cli import main

    with pytest.raises(SystemExit) as e:
        main(["zoo", "build", "--backbone", "cnn-small", "--dataset", "simeo", "--backend", "ray",
              "--ray-cpus", "0", "--out", str(tmp_path / "z")])
    assert e.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "Traceback" not in err[0] and "ray" in err[0] and "0" in err[0], err
