"""Label noise: exact corrupted fractions, transition matrices, determinism, clean val/test, and the
`--label-noise` option of `eoreps fit`, `eoreps evaluate` and the study."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from eoreps.data.datasets.base import IGNORE_INDEX
from eoreps.errors import ConfigError
from eoreps.tasks.noise import (
    LabelNoise,
    NoisyLabels,
    check_noise,
    corrupt_targets,
    noisy_keys,
    transition_matrix,
)

K = 5


@pytest.mark.parametrize("kind", ["uniform", "class"])
def test_transition_matrix_rows(kind: str) -> None:
    t = transition_matrix(K, kind, seed=3)
    assert t.shape == (K, K)
    np.testing.assert_allclose(t.sum(1), 1.0)
    assert np.all(np.diag(t) == 0) and np.all(t >= 0)
    if kind == "uniform":
        np.testing.assert_allclose(t[~np.eye(K, dtype=bool)], 1 / (K - 1))
    else:  # class-dependent: rows concentrate on a few classes, and the matrix depends on the seed
        assert t.max(1).mean() > 1 / (K - 1) + 0.1
        assert not np.allclose(t, transition_matrix(K, kind, seed=4))


@pytest.mark.parametrize("kind", ["uniform", "class"])
def test_single_labels_exact_fraction_all_changed(kind: str) -> None:
    n, f = 400, 0.3
    y = torch.arange(n) % K
    noisy = corrupt_targets(y, "classify", K, f, kind, seed=1)
    changed = noisy != y
    assert int(changed.sum()) == round(f * n)  # exactly f N, each to a *different* class
    assert noisy.dtype == y.dtype and int(noisy.min()) >= 0 and int(noisy.max()) < K
    assert torch.equal(noisy, corrupt_targets(y, "classify", K, f, kind, seed=1))  # deterministic
    assert not torch.equal(noisy, corrupt_targets(y, "classify", K, f, kind, seed=2))
    assert torch.equal(corrupt_targets(y, "classify", K, 0.0, kind), y)


def test_class_noise_follows_its_transition_matrix() -> None:
    n = 6000
    y = torch.zeros(n, dtype=torch.int64)  # every sample is class 0
    noisy = corrupt_targets(y, "classify", K, 0.5, "class", seed=7)
    moved = noisy[noisy != 0].numpy()
    observed = np.bincount(moved, minlength=K) / moved.size
    np.testing.assert_allclose(observed, transition_matrix(K, "class", seed=7)[0], atol=0.03)


def test_multilabel_exact_bits_uniform() -> None:
    n, f = 200, 0.1
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(n, K, generator=g) > 0.6).float()
    noisy = corrupt_targets(y, "multilabel", K, f, "uniform", seed=0)
    assert int((noisy != y).sum()) == round(f * n * K)
    assert set(noisy.unique().tolist()) <= {0.0, 1.0}


def test_multilabel_class_noise_moves_present_labels() -> None:
    plan = LabelNoise(1, K, 0.5, "class", seed=0)
    plan.bits[:] = False
    plan.bits[0, 1] = True  # one chosen present label
    out = plan.multilabel(0, np.array([0, 1, 0, 0, 0], dtype=np.float32))
    assert out[1] == 0 and out.sum() == 1  # label 1 moved to another class
    plan.bits[0] = False
    plan.bits[0, 3] = True  # one chosen absent label: a spurious tag
    out = plan.multilabel(0, np.array([0, 1, 0, 0, 0], dtype=np.float32))
    assert out.tolist() == [0, 1, 0, 1, 0]


def test_mask_noise_relabels_whole_regions_and_keeps_ignored_pixels() -> None:
    m = np.zeros((12, 12), dtype=np.int64)
    m[:, 6:] = 1
    m[0, 0] = IGNORE_INDEX
    plan = LabelNoise(50, K, 0.5, "uniform", seed=0)
    flipped = 0
    for i in range(50):
        out = plan.mask(i, m)
        assert out[0, 0] == IGNORE_INDEX
        for c, sl in ((0, np.s_[:, :6]), (1, np.s_[:, 6:])):
            region = out[sl][m[sl] != IGNORE_INDEX]
            assert len(np.unique(region)) == 1  # a region is relabelled as a whole, never salt-and-pepper
            flipped += int(region[0] != c)
    assert 30 <= flipped <= 70  # about half of the 100 regions
    np.testing.assert_array_equal(LabelNoise(50, K, 0.0).mask(0, m), m)


def test_noisy_labels_dataset_is_fixed_and_checks() -> None:
    data = [{"label": torch.tensor(i % K), "image": torch.zeros(1)} for i in range(100)]
    ds = NoisyLabels(data, 0.2, "uniform", K, ("label",), seed=0)
    first = [int(ds[i]["label"]) for i in range(100)]
    assert first == [int(ds[i]["label"]) for i in range(100)]  # same corruption every epoch
    assert sum(a != i % K for i, a in enumerate(first)) == 20
    assert int(data[3]["label"]) == 3  # the wrapped dataset is untouched
    with pytest.raises(ConfigError):
        NoisyLabels(data, 0.2, "uniform", K, ("target",))
    for bad in ((1.0, "uniform"), (-0.1, "uniform"), (0.1, "pairs")):
        with pytest.raises(ConfigError):
            check_noise(*bad)
    with pytest.raises(ConfigError):
        noisy_keys("regress")
    assert noisy_keys("segment", "image") == ("multilabel",)


def test_fit_cli_label_noise(tmp_path, capsys) -> None:
    from eoreps.cli import main

    with pytest.raises(SystemExit) as e:
        main(["fit", "--task", "classify", "--label-noise", "0.3", "--noise-kind", "class", "--quick",
              "--out", str(tmp_path)])
    assert e.value.code == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["config"]["label_noise"] == 0.3 and res["config"]["noise_kind"] == "class"
    for args, msg in ((["--task", "regress", "--label-noise", "0.2"], "--label-noise 0.2 applies to"),
                      (["--task", "classify", "--label-noise", "1.5"], "must be in [0, 1)")):
        with pytest.raises(SystemExit) as e:
            main(["fit", *args, "--out", str(tmp_path / "bad")])
        err = capsys.readouterr().err
        assert e.value.code == 2 and msg in err and len(err.strip().splitlines()) == 1


def test_study_noise_touches_training_labels_only(tmp_path) -> None:
    from eoreps.evaluation.data import load_eval_data
    from eoreps.evaluation.encoders import MethodSpec
    from eoreps.evaluation.study import DataConfig, StudyConfig, _noisy_train, cell_hash, plan_cells

    d = DataConfig(data="simeo", task="classify", modalities=["s2"], simeo_n=300)
    data = load_eval_data(d.data, d.task, d.modalities, simeo_n=d.simeo_n, seed=0)
    clean = StudyConfig(
        data=d,
        methods=[MethodSpec("r", backbone="random", modalities=["s2"])],
        protocols=["linear"],
        fractions=[1.0],
        seeds=1,
    )
    noisy = StudyConfig(
        data=d, methods=clean.methods, protocols=["linear"], fractions=[1.0], seeds=1, label_noise=0.4
    )
    out = _noisy_train(data, noisy, 0, {})
    y0, y1 = data.splits["train"].target, out.splits["train"].target
    assert int((y0 != y1).sum()) == round(0.4 * len(y0))
    for split in ("val", "test"):
        assert out.splits[split] is data.splits[split]
    assert _noisy_train(data, clean, 0, {}) is data
    cell = plan_cells(clean, clean.methods)[0]
    assert cell_hash(clean, clean.methods[0], cell) != cell_hash(noisy, noisy.methods[0], cell)
