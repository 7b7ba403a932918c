"""``eoreps evaluate --precision auto`` on a CPU with the bf16 flags: a trained cell times its own model
(encoder + head) in fp32 and bf16 and records the choice with the measured ratio (issue 25)."""

from __future__ import annotations

import pytest
import torch
from eval_toy import toy_data

from eoreps import precision as P
from eoreps import precision_probe as PP
from eoreps.evaluation.encoders import MethodSpec
from eoreps.evaluation.protocols import Cell, ProtocolOptions, TrainOptions, run_protocol

SUP = MethodSpec("sup", supervised=True, arch="cnn-tiny", modalities=["s2"])


def _run(precision: str, n: int | None = None) -> dict:
    """A cell on all training samples, or on the first ``n`` (a k-shot-sized cell)."""
    opts = ProtocolOptions(train=TrainOptions(epochs=1, min_steps=3, max_steps=3, batch_size=16),
                           precision=precision)
    opts.precision = P.resolve_config(opts, ("auto", "fp32", "bf16"))
    data = toy_data("classify")
    idx = data.fraction_indices([1.0], 0)[1.0]
    return run_protocol(Cell(data, SUP, "supervised", 1.0, 0, idx if n is None else idx[:n], opts))


@pytest.mark.parametrize("bf16_s, pick", [(0.5, "bf16"), (2.0, "fp32")])
def test_a_trained_cell_records_its_measured_precision(monkeypatch, tmp_path, bf16_s, pick):
    monkeypatch.delenv(P.ENV, raising=False)
    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(PP, "cache_root", lambda: tmp_path)
    calls: list[PP.Workload] = []
    monkeypatch.setattr(PP, "time_workload", lambda w: (calls.append(w), (1.0, bf16_s))[1])
    res = _run("auto")
    assert res["train_precision"] == pick and len(calls) == 1
    assert res["train_precision_reason"].startswith(f"{pick}: bf16 measured {1 / bf16_s:.3f}x fp32 for sup "
                                                    f"supervised s2 4x")
    assert calls[0].shapes[0]["s2"][0] == 16  # the cell's batch size
    _run("auto", n=5)  # 5 samples: protocols.train.fit trains on batches of min(16, 5)
    assert len(calls) == 2 and calls[1].shapes[0]["s2"][0] == 5
    res = _run("fp32")  # an explicit choice: no timing
    assert res["train_precision"] == "fp32" and len(calls) == 2
    assert res["train_precision_reason"] == "fp32: requested (auto would time bf16 against fp32)"


RAND = MethodSpec("rand", backbone="random", arch="cnn-tiny", modalities=["s2"])


def _frozen(protocol: str, precision: str, cache=None, batch: int = 32) -> dict:
    """A linear-probe or kNN cell of a random cnn-tiny encoder (features extracted ``batch`` at a time)."""
    opts = ProtocolOptions(feature_batch_size=batch, precision=precision)
    opts.precision = P.resolve_config(opts, ("auto", "fp32", "bf16"))
    data = toy_data("classify")
    idx = data.fraction_indices([1.0], 0)[1.0]
    return run_protocol(Cell(data, RAND, protocol, 1.0, 0, idx, opts, cache))


@pytest.mark.parametrize("protocol", ["linear", "knn"])
@pytest.mark.parametrize("bf16_s, pick", [(0.5, "bf16"), (2.0, "fp32")])
def test_a_frozen_feature_cell_measures_its_forward_pass(monkeypatch, tmp_path, protocol, bf16_s, pick):
    """Issue 25: linear and kNN cells time the frozen encoder's feature pass (forward only, at the batch
    the features are extracted with) and extract in what the measurement picks."""
    from eoreps.evaluation import features

    monkeypatch.delenv(P.ENV, raising=False)
    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(PP, "cache_root", lambda: tmp_path / "verdicts")
    calls: list[PP.Workload] = []
    monkeypatch.setattr(PP, "time_workload", lambda w: (calls.append(w), (1.0, bf16_s))[1])
    extracted: list[str] = []
    real = features.extract_features
    monkeypatch.setattr(features, "extract_features",
                        lambda *a, precision="fp32", **k: (extracted.append(precision),
                                                           real(*a, precision=precision, **k))[1])
    res = _frozen(protocol, "auto", tmp_path / "cache")
    assert res["feature_precision"] == pick and len(calls) == 1
    assert res["feature_precision_reason"].startswith(
        f"{pick}: bf16 measured {1 / bf16_s:.3f}x fp32 for rand features s2 4x8x8 b32 on this CPU")
    assert calls[0].forward_only and calls[0].shapes == [{"s2": [32, 4, 8, 8]}]
    assert extracted == [pick] * 3  # train, val, test extracted in the measured precision
    _frozen(protocol, "auto", tmp_path / "cache")  # the verdict and the features are cached
    assert len(calls) == 1 and len(extracted) == 3
    assert _frozen(protocol, "auto", batch=256)["feature_precision"] == pick  # capped at 90 samples
    assert len(calls) == 2 and calls[1].shapes == [{"s2": [90, 4, 8, 8]}]


def test_a_frozen_feature_cell_without_the_flags_or_with_cuda_does_not_measure(monkeypatch, tmp_path):
    monkeypatch.delenv(P.ENV, raising=False)
    monkeypatch.setattr(PP, "cache_root", lambda: tmp_path)
    monkeypatch.setattr(PP, "time_workload", lambda w: pytest.fail("timed"))
    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset({"avx512f"}))
    monkeypatch.setattr(P, "_cuda_bf16", lambda: P.Choice("bf16", "bf16: CUDA device computes bf16"))
    res = _frozen("knn", "auto")  # cells run on the CPU: a CUDA device neither measures nor picks bf16
    assert res["feature_precision"] == "fp32"
    assert res["feature_precision_reason"] == "fp32: CPU lacks amx_bf16 and avx512_bf16"
    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    res = _frozen("linear", "fp32")  # an explicit choice: no timing either
    assert res["feature_precision_reason"] == "fp32: requested (auto would time bf16 against fp32)"
    cfg = type("Cfg", (), {"precision": "auto"})()
    cfg.precision = P.resolve_config(cfg, ("auto", "fp32", "bf16"), "gpu")
    work = PP.Workload([(torch.nn.Linear(2, 2), torch.zeros(1, 2))], "linear", forward_only=True)
    rec = PP.settle(cfg, lambda: work, "gpu")  # the probe itself: CUDA keeps the capability rule
    assert rec == {"precision": "bf16", "reason": "bf16: CUDA device computes bf16"}
