"""Adding a protocol = one file + ``@register_protocol``: a toy one runs through run_protocol
and a study grid."""

from __future__ import annotations

import pytest
import torch
from eval_toy import toy_data

from eoreps.errors import ConfigError
from eoreps.evaluation.encoders import MethodSpec
from eoreps.evaluation.protocols import (
    PROTOCOL_REGISTRY,
    Cell,
    KnnOptions,
    LinearOptions,
    ProtocolOptions,
    check_protocol,
    protocol_info,
    register_protocol,
    run_protocol,
)
from eoreps.evaluation.study import CellSpec, StudyConfig, cell_hash, plan_cells


def nearest_mean(cell: Cell) -> dict[str, float]:
    """Nearest class centroid of the per-band means of s2 (no encoder): the toy protocol."""
    train, test = cell.data.splits["train"], cell.data.splits["test"]
    x_tr = train.inputs["s2"][torch.as_tensor(cell.train_idx)].mean(dim=(2, 3))
    y_tr = train.target[torch.as_tensor(cell.train_idx)]
    centroids = torch.stack([x_tr[y_tr == c].mean(0) for c in range(len(cell.data.classes))])
    pred = torch.cdist(test.inputs["s2"].mean(dim=(2, 3)), centroids).argmin(1)
    return {"oa": float((pred == test.target).float().mean()), "k": float(cell.options.knn.k)}


@pytest.fixture()
def toy_protocol():
    register_protocol("nearest-mean", tasks=("classify",), options=(KnnOptions,))(nearest_mean)
    yield protocol_info("nearest-mean")
    PROTOCOL_REGISTRY.remove("nearest-mean")


def _cell(data, protocol: str, options: ProtocolOptions | None = None) -> Cell:
    idx = data.fraction_indices([1.0], 0)[1.0]
    method = MethodSpec("rand", backbone="random", arch="cnn-tiny")
    return Cell(data, method, protocol, 1.0, 0, idx, options or ProtocolOptions())


def test_toy_protocol_runs_through_run_protocol(toy_protocol) -> None:
    result = run_protocol(_cell(toy_data("classify"), "nearest-mean", ProtocolOptions(knn=KnnOptions(k=7))))
    assert result["oa"] > 0.6 and result["k"] == 7.0  # separable toy classes; its options reached it
    assert toy_protocol.option_groups() == ["knn"]
    with pytest.raises(ConfigError, match="no segment variant"):
        run_protocol(_cell(toy_data("segment"), "nearest-mean"))
    with pytest.raises(ConfigError, match="does not apply to a supervised method"):
        check_protocol("nearest-mean", "supervised", "classify")


def test_toy_protocol_in_a_study_grid_hashes_its_own_options(toy_protocol) -> None:
    cfg = StudyConfig(methods=[{"name": "rand", "backbone": "random", "arch": "cnn-tiny"}],
                      protocols=["nearest-mean"], fractions=[1.0], seeds=1, data={"task": "classify"})
    (spec,) = plan_cells(cfg, cfg.methods)
    assert spec == CellSpec("rand", "nearest-mean", 1.0, 0)
    before = cell_hash(cfg, cfg.methods[0], spec)
    cfg.options.linear = LinearOptions(C=[1.0])  # an option group it does not read
    assert cell_hash(cfg, cfg.methods[0], spec) == before
    cfg.options.knn = KnnOptions(k=3)
    assert cell_hash(cfg, cfg.methods[0], spec) != before


def test_toy_protocol_is_gone_after_the_fixture() -> None:
    assert "nearest-mean" not in PROTOCOL_REGISTRY
    with pytest.raises(ConfigError, match="unknown protocol 'nearest-mean'"):
        check_protocol("nearest-mean", "random", "classify")


def test_registrations_match_the_protocol_table() -> None:
    """What the old if-chain and option table said, now read from the registrations."""
    table = {"linear": (["linear", "train"], {"classify", "multilabel", "segment"}),
             "knn": (["knn"], {"classify", "multilabel"}),
             "finetune": (["train"], {"classify", "multilabel", "segment"}),
             "adapter": (["train", "adapter"], {"classify", "multilabel", "segment"}),
             "supervised": (["train"], {"classify", "multilabel", "segment"})}
    for name, (groups, tasks) in table.items():
        info = protocol_info(name)
        assert info.option_groups() == groups and set(info.runners) == tasks
    assert protocol_info("supervised").method_kinds == ("supervised",)
    assert protocol_info("linear").runners["segment"].__name__ == "run_frozen_decoder"
