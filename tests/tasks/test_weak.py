"""Weak supervision for segmentation: point labels, image labels through a pooled class map, the budget
model, `eoreps fit --supervision` end to end and the quick weak-supervision experiment."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from eoreps.data.datasets.base import IGNORE_INDEX
from eoreps.errors import ConfigError
from eoreps.tasks.budget import AnnotationCosts, clicks_per_patch, patches_for_budget
from eoreps.tasks.cam import image_label_loss, pool_logits
from eoreps.tasks.spec import TaskSpec
from eoreps.tasks.weak_labels import WeakLabels, image_labels_from_mask, sample_points, sample_rng

K = 4


def _mask(seed: int = 0, h: int = 12, w: int = 12) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.randint(0, K, (h, w), generator=g)
    m[0, :3] = IGNORE_INDEX
    return m


# ------------------------------------------------------------------------------------------- points
def test_point_loss_ignores_unlabelled_pixels() -> None:
    spec = TaskSpec("segment", num_classes=K, supervision="points")
    assert spec.loss_target == "points" and spec.target == "mask"
    points = torch.stack([sample_points(_mask(i), 2, sample_rng(0, 0, i)) for i in range(3)])  # (B, H, W)
    logits = torch.randn(3, K, 12, 12, requires_grad=True)
    loss = spec.loss(logits, points)
    loss.backward()
    labelled = points != IGNORE_INDEX
    grad_per_pixel = logits.grad.abs().sum(1)  # (B, H, W)
    assert (grad_per_pixel[~labelled] == 0).all() and (grad_per_pixel[labelled] > 0).all()
    # literal transcription: mean over labelled pixels of -log softmax at the labelled class
    lp = torch.log_softmax(logits.detach(), 1)
    terms = [-lp[b, int(points[b, i, j]), i, j] for b, i, j in labelled.nonzero().tolist()]
    assert math.isclose(float(loss.detach()), float(sum(terms) / len(terms)), rel_tol=1e-5)
    # changing the predictions at unlabelled pixels does not change the loss
    changed = logits.detach().clone()
    changed[(~labelled)[:, None].expand_as(changed)] = torch.randn(int((~labelled).sum()) * K) * 10
    assert torch.allclose(spec.loss(changed, points), loss.detach())


def test_points_per_class_count_and_determinism() -> None:
    m = _mask(1)
    for k in (1, 3, 50):
        p = sample_points(m, k, sample_rng(7, 0, 5))
        for c in range(K):
            assert int((p == c).sum()) == min(k, int((m == c).sum()))
        assert ((p == m) | (p == IGNORE_INDEX)).all()  # labelled pixels carry their true class
        assert (p[0, :3] == IGNORE_INDEX).all()
    a, b = sample_points(m, 2, sample_rng(7, 0, 5)), sample_points(m, 2, sample_rng(7, 0, 5))
    assert torch.equal(a, b)
    assert not torch.equal(a, sample_points(m, 2, sample_rng(8, 0, 5)))  # another seed, other points
    with pytest.raises(ConfigError):
        sample_points(m, 0, sample_rng(0, 0, 0))


class _Masks(torch.utils.data.Dataset):
    classes = tuple("abcd")

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int):
        m = _mask(i)
        return {"mask": m, "multilabel": image_labels_from_mask(m, K)}


def test_weak_labels_dataset_fixed_across_epochs_and_keeps_true_mask() -> None:
    ds = WeakLabels(_Masks(), "points", K, points_per_class=2, seed=3)
    first = [ds[i]["points"] for i in range(len(ds))]
    again = [ds[i]["points"] for i in range(len(ds))]  # a second epoch
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], WeakLabels(_Masks(), "points", K, 2, seed=3, salt=1)[0]["points"])
    assert torch.equal(ds[2]["mask"], _mask(2)) and ds.classes == tuple("abcd")
    img = WeakLabels(_Masks(), "image", K)[1]["image_labels"]
    assert img.shape == (K,) and torch.equal(img, image_labels_from_mask(_mask(1), K))
    with pytest.raises(ConfigError):
        WeakLabels(_Masks(), "full", K)


def test_image_labels_from_mask_threshold() -> None:
    m = torch.zeros(10, 10, dtype=torch.long)
    m[:, :3] = 1  # 30 %
    m[0, 9] = 2  # 1 %
    m[1, 9] = IGNORE_INDEX
    assert image_labels_from_mask(m, K).tolist() == [1.0, 1.0, 0.0, 0.0]
    assert image_labels_from_mask(m, K, min_fraction=0.0).tolist() == [1.0, 1.0, 1.0, 0.0]


# ------------------------------------------------------------------------------------- image labels
def test_pooling_is_pooling_of_the_map() -> None:
    logits = torch.randn(2, K, 5, 6)
    r = 3.0
    lse = pool_logits(logits, "lse", r)
    for b in range(2):
        for k in range(K):
            vals = [float(v) for v in logits[b, k].flatten()]
            literal = math.log(sum(math.exp(r * v) for v in vals) / len(vals)) / r
            assert math.isclose(float(lse[b, k]), literal, rel_tol=1e-5, abs_tol=1e-6)
    assert torch.allclose(pool_logits(logits, "gap"), logits.mean((2, 3)))
    # LSE lies between the mean and the max, and tends to the max for a large r
    assert (lse >= logits.mean((2, 3)) - 1e-6).all() and (lse <= logits.amax((2, 3)) + 1e-6).all()
    assert torch.allclose(pool_logits(logits, "lse", 1e4), logits.amax((2, 3)), atol=1e-2)
    with pytest.raises(ConfigError):
        pool_logits(logits, "max")


def test_image_label_model_produces_a_spatial_mask() -> None:
    from eoreps.models.fusion import InputSpec
    from eoreps.tasks.supervised import SupervisedModule

    torch.manual_seed(0)
    spec = TaskSpec("segment", num_classes=K, supervision="image")
    module = SupervisedModule([spec], [InputSpec("s2", 3)], backbone="cnn-tiny", grid_size=(16, 16))
    labels = torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0]])
    batch = {
        "s2": torch.randn(2, 3, 16, 16),
        "image_labels": labels,
        "mask": torch.zeros(2, 16, 16, dtype=torch.long),
    }
    maps = module(batch)["segment"]
    assert maps.shape == (2, K, 16, 16)  # a per-pixel class map, not a patch vector
    loss = module.model.losses({"segment": maps}, batch)["segment"]
    expected = torch.nn.functional.binary_cross_entropy_with_logits(pool_logits(maps, "lse", 5.0), labels)
    assert torch.allclose(loss, expected)
    assert torch.allclose(image_label_loss(maps, labels, "gap"),
                          torch.nn.functional.binary_cross_entropy_with_logits(maps.mean((2, 3)), labels))
    assert maps.argmax(1).shape == (2, 16, 16)  # the predicted mask at test time


def test_supervision_validation() -> None:
    from eoreps.tasks.fit import FitConfig

    with pytest.raises(ConfigError, match="choose one of: full, image, points"):
        FitConfig(task="segment", supervision="scribbles")
    with pytest.raises(ConfigError, match="applies to task=segment only"):  # the field names (CLI: the flags)
        FitConfig(task="classify", supervision="image")
    with pytest.raises(ConfigError):
        FitConfig(task="segment", supervision="points", points_per_class=0)
    with pytest.raises(ConfigError):
        TaskSpec("multilabel", num_classes=3, supervision="points")


# ------------------------------------------------------------------------------------------- budget
def test_budget_model() -> None:
    c = AnnotationCosts()
    assert c.patch_cost("image", 8) == 8.0
    assert c.patch_cost("points", 8, clicks=3) == pytest.approx(8 + 3 * 2.4)
    assert c.patch_cost("full", 8) == pytest.approx(8 * 239.7 / 20.0)
    masks = np.stack([_mask(i).numpy() for i in range(3)])
    clicks = clicks_per_patch(masks, K, 2)
    assert clicks.tolist() == [sum(min(2, int((m == k).sum())) for k in range(K)) for m in masks]
    assert patches_for_budget(100.0, 8.0, pool=1000) == 12 and patches_for_budget(100.0, 8.0, pool=5) == 5
    with pytest.raises(ConfigError):
        c.patch_cost("squiggles", 8)


# ---------------------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("supervision", ["full", "image", "points"])
def test_fit_cli_each_supervision(tmp_path, supervision: str) -> None:
    from eoreps.cli import main

    with pytest.raises(SystemExit) as e:
        main(["fit", "--task", "segment", "--supervision", supervision, "--points-per-class", "2", "--quick",
              "--out", str(tmp_path)])
    assert e.value.code == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["config"]["supervision"] == supervision
    assert 0 <= res["metrics"]["test"]["segment/miou"] <= 1  # scored against the true masks


def test_fit_cli_supervision_errors(tmp_path, capsys) -> None:
    from eoreps.cli import main

    for args, msg in ((["--task", "segment", "--supervision", "box"], "unknown supervision 'box'"),
                      (["--task", "classify", "--supervision", "points"], "applies to --task segment only")):
        with pytest.raises(SystemExit) as e:
            main(["fit", *args, "--out", str(tmp_path)])
        err = capsys.readouterr().err
        assert e.value.code == 2 and msg in err and len(err.strip().splitlines()) == 1


def test_weak_supervision_experiment_quick(tmp_path) -> None:
    from eoreps.tasks.experiments.weak import WeakSettings, run_weak_supervision

    s = WeakSettings.quick()
    df, paths = run_weak_supervision(tmp_path, s)
    for f in ("results.csv", "summary.csv", "summary.md", "weak_supervision.png", "report.html"):
        assert (tmp_path / f).is_file(), f
    table = pd.read_csv(tmp_path / "summary.csv")
    assert list(table.columns) == [
        "budget",
        "supervision",
        "mIoU (%)",
        "pixel accuracy (%)",
        "training patches",
        "epochs",
        "seeds",
    ]
    assert len(table) == len(s.budgets) * len(s.supervisions)
    assert set(table["supervision"]) == {"full masks", "image labels", "points k=1", "points k=5"}
    assert table.notna().all().all()
    # equal budget: cheaper labels buy more patches
    n = table.set_index("supervision")["training patches"].astype(float)
    assert n["image labels"] > n["points k=1"] > n["points k=5"] > n["full masks"]
    md = (tmp_path / "summary.md").read_text()
    assert "synthetic" in md and "Bearman" in md
