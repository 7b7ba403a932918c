"""k-shot episodes beside label fractions (issue 24, item 3): nested, exact k per class, reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from eoreps.data.splits import kshot_indices
from eoreps.errors import ConfigError, DataError
from eoreps.evaluation.methods import MethodSpec
from eoreps.evaluation.study import CellSpec, DataConfig, StudyConfig, plan_cells


def _single(n=300, k=5, seed=0):
    y = np.random.default_rng(seed).integers(k, size=n)
    y[y == 4] = 0
    y[:3] = 4  # class 4 has only 3 samples
    return y


def test_single_label_episodes_are_exact_nested_and_seeded():
    y = _single()
    ep = kshot_indices(y, [10, 1, 5], seed=3)
    assert list(ep) == [10, 1, 5]
    for k, idx in ep.items():
        counts = np.bincount(y[idx], minlength=5)
        assert counts[:4].tolist() == [k] * 4  # exactly k of every class ...
        assert counts[4] == min(k, 3)  # ... all of a class with fewer than k
        assert len(np.unique(idx)) == len(idx) and np.all(np.diff(idx) > 0)
    assert set(ep[1]) <= set(ep[5]) <= set(ep[10])
    again = kshot_indices(y, [5], seed=3)[5]  # the same episode whatever other k are asked for
    assert np.array_equal(again, ep[5])
    assert not np.array_equal(kshot_indices(y, [5], seed=4)[5], ep[5])


def test_multi_label_episodes_hold_at_least_k_positives_and_nest():
    rng = np.random.default_rng(0)
    y = rng.random((400, 6)) < np.array([0.5, 0.3, 0.1, 0.05, 0.02, 0.0])
    y[0, 5] = y[1, 5] = True  # a label with two positives
    ep = kshot_indices(y, [1, 3, 8], seed=1)
    for k, idx in ep.items():
        have = y[idx].sum(0)
        assert np.all(have >= np.minimum(k, y.sum(0))), (k, have)
    assert set(ep[1]) <= set(ep[3]) <= set(ep[8])
    assert len(ep[8]) < 8 * 6  # a sample counts for all its labels
    assert np.array_equal(kshot_indices(y, [3], seed=1)[3], ep[3])


@pytest.mark.parametrize("bad", [0, -2, 1.5, "x"])
def test_bad_shots_are_one_line_config_errors(bad):
    with pytest.raises(ConfigError, match="shots") as e:
        kshot_indices(_single(), [bad], seed=0)
    assert "\n" not in str(e.value)


def test_empty_labels():
    with pytest.raises(DataError, match="empty"):
        kshot_indices(np.zeros(0, dtype=int), [1], seed=0)


def test_kshot_cells_in_the_grid_keep_old_fraction_hashes():
    cfg = StudyConfig(data=DataConfig(data="simeo", modalities=["s2"]), protocols=["linear"], fractions=[1.0],
                      shots=[1, 5], seeds=1, methods=[MethodSpec("r", backbone="random", arch="cnn-tiny")])
    keys = [c.key for c in plan_cells(cfg, cfg.methods)]
    assert keys == ["r__linear__f1__s0", "r__linear__k1__s0", "r__linear__k5__s0"]
    assert "shots" not in CellSpec("r", "linear", 1.0, 0).record()  # old cells hash as before
    assert CellSpec("r", "linear", 0.0, 0, 5).record()["shots"] == 5
    with pytest.raises(ConfigError, match="shots"):
        StudyConfig(shots=[0])
    with pytest.raises(ConfigError, match="fractions"):
        plan_cells(StudyConfig(fractions=[], methods=cfg.methods), cfg.methods)


def test_kshot_study_tables_and_plot(tmp_path, capsys):
    """--shots adds k-shot columns (and their CIs) to the table, per-class tables and kshot.png."""
    import pandas as pd
    import yaml

    from eoreps.cli import main
    from eoreps.data.simeo import write_simeo

    folder = write_simeo(tmp_path / "simeo", n=90, seed=1)
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({
        "data": {"data": str(folder), "task": "classify", "modalities": ["s2"]},
        "backbones": ["random:cnn-tiny"], "protocols": ["knn"], "fractions": [1.0], "seeds": 2}))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(["study", "label-efficiency", "--config", str(study), "--shots", "1,2", "--out", str(out),
              "--quick"])
    assert e.value.code == 0, capsys.readouterr().err
    df = pd.read_csv(out / "results.csv")
    one, two = sorted(df.loc[df["shots"] > 0, "n_train"].unique())  # the classes present in training
    assert two == 2 * one and 4 <= one <= df.filter(like="acc/").shape[1]
    md = (out / "tables.md").read_text(encoding="utf-8")
    header = next(ln for ln in md.splitlines() if ln.startswith("| method | protocol"))
    assert "| 1-shot | 1-shot 95 % CI | 2-shot | 2-shot 95 % CI | 100 % labels |" in header
    assert "Per-class results at 2 labelled samples per class" in md
    assert (out / "kshot.png").stat().st_size > 1000 and (out / "label_efficiency.png").is_file()
    assert f"k-shot:  {out / 'kshot.png'}" in capsys.readouterr().out


def test_kshot_only_study_prints_no_missing_plot(tmp_path, capsys):
    """fractions: [] writes kshot.png only: the command does not announce a label_efficiency.png."""
    import yaml

    from eoreps.cli import main
    from eoreps.data.simeo import write_simeo

    folder = write_simeo(tmp_path / "simeo", n=90, seed=1)
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({
        "data": {"data": str(folder), "task": "classify", "modalities": ["s2"]},
        "backbones": ["random:cnn-tiny"], "protocols": ["knn"], "fractions": [], "seeds": 1}))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(["study", "label-efficiency", "--config", str(study), "--shots", "1", "--out", str(out),
              "--quick"])
    printed = capsys.readouterr()
    assert e.value.code == 0, printed.err
    assert (out / "kshot.png").is_file() and not (out / "label_efficiency.png").exists()
    assert "label_efficiency.png" not in printed.out and f"k-shot:  {out / 'kshot.png'}" in printed.out
