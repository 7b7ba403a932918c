"""The study checks its whole grid before the first pretraining runs (issue 21, item 4)."""

from __future__ import annotations

import pytest

from eoreps.errors import ConfigError
from eoreps.evaluation import pretraining, study
from eoreps.evaluation.methods import MethodSpec
from eoreps.evaluation.study import DataConfig, StudyConfig, run_study, validate_grid


def _cfg(last: dict, **kw) -> StudyConfig:
    methods = [MethodSpec("rot", pretrain={"method": "rotation", "backbone": "cnn-tiny"}),
               MethodSpec("simclr", pretrain={"method": "simclr", "backbone": "cnn-tiny"}),
               MethodSpec(**last)]
    return StudyConfig(data=DataConfig(data="/nonexistent/data", modalities=["s2"]), methods=methods,
                       **{"protocols": ["linear"], "fractions": [1.0], "seeds": 1, **kw})


@pytest.mark.parametrize("last, where", [
    ({"name": "rand", "backbone": "random", "arch": "cnn-tinny"}, "cnn-tinny"),
    ({"name": "rand", "backbone": "random", "arch": "cnn-tiny", "protocols": ["linaer"]}, "linaer"),
    ({"name": "sc2", "pretrain": {"method": "simclr", "backbone": "cnn-tiny",
                                  "method_kwargs": {"temprature": 1}}},
     "temprature"),
    ({"name": "mae", "pretrain": {"method": "mae", "backbone": "cnn-smal"}}, "cnn-smal"),
    ({"name": "rot", "backbone": "random", "arch": "cnn-tiny"}, "unique"),
])
def test_a_typo_in_the_last_entry_fails_before_any_pretraining(monkeypatch, tmp_path, last, where):
    runs: list[str] = []
    monkeypatch.setattr(pretraining, "run_method_pretraining", lambda pc: runs.append(pc.out) or tmp_path)
    with pytest.raises(ConfigError) as e:
        run_study(_cfg(last), tmp_path / "study")
    assert where in str(e.value) and "\n" not in str(e.value)
    assert runs == []  # nothing was pretrained before the error
    assert not (tmp_path / "study").exists()


def test_bad_fraction_and_valid_grid():
    with pytest.raises(ConfigError, match="1.5"):
        validate_grid(_cfg({"name": "rand", "backbone": "random", "arch": "cnn-tiny"}, fractions=[0.1, 1.5]))
    cells = validate_grid(_cfg({"name": "rand", "backbone": "random", "arch": "cnn-tiny"}))
    assert [c.key for c in cells] == ["rot__linear__f1__s0", "simclr__linear__f1__s0", "rand__linear__f1__s0"]
    assert study.validate_grid is validate_grid
