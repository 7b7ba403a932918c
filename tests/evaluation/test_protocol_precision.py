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
