"""``hyper fit --precision auto`` on a CPU with the bf16 flags times its own training step (issue 25): the
measured choice lands in ``hyper.json`` and ``fit_plan.json``; a resumed fit on auto keeps the precision
it started with (also an explicit one), an explicit other choice is refused."""

from __future__ import annotations

import json

import pytest
import torch

from eoreps import precision as P
from eoreps import precision_probe as PP
from eoreps.hyper.autoencoder import ModelConfig
from eoreps.hyper.train import FitConfig, fit

TINY = ModelConfig(d_model=32, n_heads=2, enc_layers=1, dec_layers=1, latent_dim=8, proj_dim=8)


def test_hyper_fit_records_the_measured_choice(tiny_zoo, tmp_path, monkeypatch):
    monkeypatch.delenv(P.ENV, raising=False)
    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(PP, "cache_root", lambda: tmp_path / "cache")
    seen: list[float] = []
    result = [(1.0, 1.5)]  # bf16 slower

    def timer(workload: PP.Workload) -> tuple[float, float]:
        module, batch = workload.parts[0]
        seen.append(float(module(batch).detach()))  # the hyper module's own loss on a real training batch
        return result[0]

    monkeypatch.setattr(PP, "time_workload", timer)
    out = tmp_path / "rep"
    fit(FitConfig(zoo=tiny_zoo, out=out, epochs=1, batch_size=8, precision="auto", model=TINY))
    reason = "fp32: bf16 measured 0.667x fp32 for hyper neuron b8 on this CPU (bf16 needs >= 1.05x)"
    meta = json.loads((out / "hyper.json").read_text())
    assert meta["precision"] == {"precision": "fp32", "reason": reason}
    assert meta["config"]["precision"] == "fp32"
    assert json.loads((out / "fit_plan.json").read_text())["precision"] == "fp32"
    assert len(seen) == 1 and seen[0] > 0
    result[0] = (1.0, 0.5)  # bf16 now faster: a resume must not switch
    fit(FitConfig(zoo=tiny_zoo, out=out, epochs=2, batch_size=8, precision="auto", model=TINY))  # resumes
    meta = json.loads((out / "hyper.json").read_text())
    assert meta["precision"]["reason"] == reason and len(seen) == 1  # the stored choice, not re-timed
    with pytest.raises(Exception, match="differs in precision"):  # an explicit other choice is refused
        fit(FitConfig(zoo=tiny_zoo, out=out, epochs=3, batch_size=8, precision="bf16", model=TINY))
    explicit = tmp_path / "explicit"  # an explicit fp32 fit resumed on the default auto stays fp32
    fit(FitConfig(zoo=tiny_zoo, out=explicit, epochs=1, batch_size=8, precision="fp32", model=TINY))
    fit(FitConfig(zoo=tiny_zoo, out=explicit, epochs=2, batch_size=8, precision="auto", model=TINY))
    assert json.loads((explicit / "fit_plan.json").read_text())["precision"] == "fp32"
    assert json.loads((explicit / "hyper.json").read_text())["precision"]["precision"] == "fp32"
    assert len(seen) == 1
