"""``--precision auto`` (issue 25): bf16 where the device computes it natively, fp32 elsewhere; recorded in
every output; bf16 runs stay close to fp32 ones."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from eoreps import precision as P
from eoreps.vocabulary import lightning_precision, run_precision

CAPABILITY = {"A100": (8, 0), "V100": (7, 0), "T4": (7, 5)}  # CUDA compute capability


@pytest.fixture
def detect(monkeypatch, tmp_path):
    """Detection as on a user's machine (no suite override), with the CPU flags and CUDA device given; a run
    on auto that times its model (:mod:`eoreps.precision_probe`) measures bf16 at 2x fp32 (no real timing,
    verdicts cached under tmp_path)."""
    from eoreps import precision_probe

    monkeypatch.delenv(P.ENV, raising=False)
    monkeypatch.setattr(precision_probe, "cache_root", lambda: tmp_path / "precision-cache")
    monkeypatch.setattr(precision_probe, "time_workload", lambda workload: (1.0, 0.5))

    def use(flags: set[str], cuda: str | None = None) -> None:
        monkeypatch.setattr(P, "cpu_flags", lambda: frozenset(flags))
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda is not None)
        major = CAPABILITY.get(cuda or "", (0, 0))[0]

        def is_bf16_supported(including_emulation: bool = True) -> bool:  # torch's: emulation counts
            return major >= 8 or (including_emulation and cuda is not None)

        monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: cuda)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: CAPABILITY[cuda or ""])

    return use


def test_cpu_without_the_flags_gets_fp32(detect):
    detect({"avx2", "avx512f", "fma"})
    assert P.resolve_auto("cpu") == P.Choice("fp32", "fp32: CPU lacks amx_bf16 and avx512_bf16")
    assert run_precision("auto") == "fp32" and lightning_precision("auto") == "32-true"
    from eoreps.tasks.fit import FitConfig

    assert FitConfig().precision == "fp32"


@pytest.mark.parametrize("flags, reason", [
    ({"avx512_bf16"}, "bf16: CPU has avx512_bf16"),
    ({"amx_bf16", "avx512_bf16"}, "bf16: CPU has amx_bf16 and avx512_bf16"),
])
def test_cpu_with_native_bf16_gets_bf16(detect, flags, reason):
    from eoreps.hyper.fit_options import FitOptions
    from eoreps.ssl.pretrain import PretrainConfig
    from eoreps.tasks.fit import FitConfig

    detect({"avx512f", *flags})
    assert P.resolve_auto("cpu") == P.Choice("bf16", reason)
    assert FitConfig().precision == "bf16" and PretrainConfig(accelerator="cpu").precision == "bf16"
    assert FitOptions().precision == "bf16" and lightning_precision("auto") == "bf16-mixed"
    assert FitConfig(precision="fp32").precision == "fp32"  # an explicit choice wins
    want = {"precision": "fp32", "reason": "fp32: requested (auto would time bf16 against fp32)"}
    assert P.precision_record("fp32") == want


def test_cuda_decides_when_the_run_may_use_it(detect):
    detect(set(), cuda="A100")
    assert P.resolve_auto("auto") == P.Choice("bf16", "bf16: CUDA device A100 supports bf16")
    assert P.resolve_auto("gpu").precision == "bf16"
    assert P.resolve_auto("cpu").precision == "fp32"  # a CPU run looks at the CPU
    detect({"amx_bf16"}, cuda="V100")
    assert P.resolve_auto("gpu") == P.Choice("fp32", "fp32: CUDA device V100 lacks native bf16")
    detect({"amx_bf16"}, cuda=None)
    assert P.resolve_auto("auto") == P.Choice("bf16", "bf16: CPU has amx_bf16")  # no CUDA: the CPU decides


@pytest.mark.parametrize("gpu", ["V100", "T4"])
def test_a_gpu_that_only_emulates_bf16_gets_fp32(detect, monkeypatch, gpu):
    """Capability 7.x: torch's ``is_bf16_supported()`` says yes (emulation), ``auto`` still picks fp32."""
    detect(set(), cuda=gpu)
    assert torch.cuda.is_bf16_supported()  # what the old check asked
    assert P.resolve_auto("gpu") == P.Choice("fp32", f"fp32: CUDA device {gpu} lacks native bf16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)  # a torch without including_emulation
    assert P.resolve_auto("gpu").precision == "fp32"  # the capability decides
    detect(set(), cuda="A100")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert P.resolve_auto("gpu").precision == "bf16"


def test_an_explicit_precision_is_recorded_as_requested(detect, tmp_path):
    """``--precision bf16`` on a bf16 CPU: the record says "requested", not auto's detection reason; ``auto``
    keeps the reason, through the copies a run makes of its config."""
    from eoreps.evaluation.evaluate_config import EvaluateConfig
    from eoreps.hyper.fit_options import FitOptions
    from eoreps.ssl.pretrain import PretrainConfig
    from eoreps.tasks.fit_config import FitConfig

    detect({"amx_bf16"})
    auto = {"precision": "bf16", "reason": "bf16: CPU has amx_bf16"}
    asked = {"precision": "bf16", "reason": "bf16: requested"}
    for value, want in (("auto", auto), ("bf16", asked), ("bf16-mixed", asked)):
        # the configs the runs record: run_pretrain's, run_study's options, hyper's fit
        pre = PretrainConfig(method="simclr", accelerator="cpu", precision=value).resolved()
        options = EvaluateConfig(protocol=["linear"], precision=value).study().options
        hyper = FitOptions(precision=value).to_config(tmp_path / "zoo", tmp_path / "out")
        hyper.validate()
        for cfg in (pre, FitConfig(precision=value), options, hyper):
            assert cfg.precision == "bf16"  # stored resolved, as before
            assert P.precision_record(cfg.precision, asked=P.requested(cfg)) == want, (value, type(cfg))
    fp32 = FitConfig(precision="fp32")
    assert P.precision_record(fp32.precision, asked=P.requested(fp32)) == {
        "precision": "fp32", "reason": "fp32: requested (auto would time bf16 against fp32)"}
    fp32.precision = "bf16"  # set after resolving: an explicit choice
    assert P.requested(fp32) == "bf16"


def test_flags_are_read_from_cpuinfo(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx512f avx512_bf16 sse\n\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    monkeypatch.setattr(P, "CPUINFO", info)
    P.cpu_flags.cache_clear(), P.cpu_model.cache_clear()
    try:
        assert P.cpu_flags() == {"fpu", "avx512f", "avx512_bf16", "sse"} and P.cpu_model() == "Test CPU 9000"
        monkeypatch.setattr(P, "CPUINFO", tmp_path / "absent")
        P.cpu_flags.cache_clear()
        assert P.cpu_flags() == frozenset()  # no /proc/cpuinfo (macOS, Windows): no flags, fp32
    finally:
        P.cpu_flags.cache_clear(), P.cpu_model.cache_clear()


def test_the_env_override_and_the_announcement(monkeypatch, capsys):
    monkeypatch.setenv(P.ENV, "bf16")
    assert P.resolve_auto("cpu") == P.Choice("bf16", f"bf16: {P.ENV}=bf16")
    monkeypatch.setattr(P, "_ANNOUNCED", set())
    rec = P.precision_record("bf16")
    P.announce(rec), P.announce(rec)
    assert capsys.readouterr().out == f"precision: bf16 (bf16: {P.ENV}=bf16)\n"  # once, on stdout


def _pretrain(tmp_path, precision: str):
    from eoreps.ssl.pretrain import PretrainConfig, run_pretrain

    cfg = PretrainConfig(method="simclr", backbone="cnn-tiny", modalities=["s2"], precision=precision,
                         out=str(tmp_path / precision), quick=True, quick_keep=["epochs"], epochs=3,
                         batch_size=16, max_samples=64, monitor_samples=32, knn_train_samples=64,
                         knn_val_samples=32, accelerator="cpu", checkpoint_every=100, loader="memory")
    res = run_pretrain(cfg)
    with open(res.out / "logs" / "metrics.csv") as f:
        losses = [float(r["train/loss_epoch"]) for r in csv.DictReader(f) if r.get("train/loss_epoch")]
    return res, losses


def test_bf16_pretraining_stays_close_to_fp32_and_records_its_precision(tmp_path, detect):
    """Tolerance: every epoch's mean SimCLR loss within 2 % of fp32's, the kNN probe accuracy on SimEO
    within 0.1."""
    detect({"amx_bf16"})
    ref, ref_losses = _pretrain(tmp_path, "fp32")
    got, losses = _pretrain(tmp_path, "auto")
    assert len(losses) == len(ref_losses) == 3
    assert losses != ref_losses  # really computed in another precision
    close = [abs(a - b) <= 0.02 * abs(b) for a, b in zip(losses, ref_losses, strict=True)]
    assert all(close), (losses, ref_losses)
    acc, ref_acc = got.metrics["s2/knn_acc"], ref.metrics["s2/knn_acc"]
    assert abs(acc - ref_acc) <= 0.1, (acc, ref_acc)
    rec = json.loads((got.out / "pretrain.json").read_text())
    measured = ("bf16: bf16 measured 2.000x fp32 for cnn-tiny 12x32x32 b16 simclr on this CPU "
                "(bf16 needs >= 1.05x)")
    assert rec["precision"] == {"precision": "bf16", "reason": measured}  # SimCLR's step on a batch of 16
    assert rec["config"]["precision"] == "bf16"
    cards = [json.loads(p.read_text()) for p in got.out.glob("backbone*.json")]  # the encoders' cards
    assert cards and all(c["precision"] == rec["precision"] for c in cards)
    assert json.loads((ref.out / "pretrain.json").read_text())["precision"]["reason"] == \
        "fp32: requested (auto would time bf16 against fp32)"


def test_evaluate_resolves_auto_and_autocasts_its_forward_passes(detect, tmp_path):
    """``eoreps evaluate --precision auto``: bf16 on a bf16 CPU, into the study's options and cell hashes;
    bf16 features within 2 % (relative L2) of fp32 and cached apart."""
    from eoreps.evaluation.evaluate_config import EvaluateConfig
    from eoreps.evaluation.features import cached_features
    from eoreps.evaluation.study import cell_hash, plan_cells, with_baselines

    detect({"avx512_bf16"})
    study = EvaluateConfig(protocol=["linear"]).study()
    assert study.options.precision == "bf16"
    fp32 = EvaluateConfig(protocol=["linear"], precision="fp32").study()
    m = with_baselines(study)[0]
    c = plan_cells(study, [m])[0]
    assert cell_hash(study, m, c) != cell_hash(fp32, m, c)
    torch.manual_seed(0)
    enc = torch.nn.Sequential(torch.nn.Conv2d(4, 16, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten())
    wrap = type("Enc", (torch.nn.Module,), {"forward": lambda self, b: enc(b["s2"])})()
    x = {"s2": torch.randn(20, 4, 8, 8)}
    a = cached_features(wrap, x, {"k": 1}, tmp_path, 8)
    b = cached_features(wrap, x, {"k": 1}, tmp_path, 8, precision="bf16")
    assert b.dtype == torch.float32 and not torch.equal(a, b)
    assert float((a - b).norm() / a.norm()) < 0.02
    assert len(list((tmp_path / "features").glob("*.npy"))) == 2


def test_fit_default_records_and_prints_its_precision_once(detect, tmp_path, capsys, monkeypatch):
    from eoreps.cli import main

    detect({"amx_bf16"})
    monkeypatch.setattr(P, "_ANNOUNCED", set())
    with pytest.raises(SystemExit) as e:
        main(["fit", "--quick", "--out", str(tmp_path / "fit")])
    assert e.value.code in (0, None)
    res = json.loads((tmp_path / "fit" / "results.json").read_text())
    reason = "bf16: bf16 measured 2.000x fp32 for cnn-tiny 12x32x32 b32 on this CPU (bf16 needs >= 1.05x)"
    assert res["precision"] == {"precision": "bf16", "reason": reason}
    assert res["config"]["precision"] == "bf16"
    assert capsys.readouterr().out.count(f"precision: bf16 ({reason})") == 1
