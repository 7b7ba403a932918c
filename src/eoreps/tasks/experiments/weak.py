"""``eoreps experiment weak-supervision``: full masks vs image labels vs k-point labels at
equal annotation budgets.

Land-cover segmentation on SimEO (synthetic, 8 classes, 32 x 32 patches). For each budget (seconds of
annotation, :mod:`eoreps.tasks.budget`) every kind of supervision gets as many training patches as the
budget buys: full masks are expensive (few patches), image-level labels cheap (many patches), points in
between. Rows: budget x supervision; columns: test mIoU and pixel accuracy against the *true* masks
(mean +- std over seeds), the patches bought and the epochs trained. A figure shows mIoU against budget,
one line per supervision.

Training length: every run sees about ``passes`` training samples (``epochs = round(passes / n)``,
clamped to ``[min_epochs, max_epochs]``), so a cheap-label run with many patches does not simply get more
optimisation steps than a full-mask run with few.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from eoreps.tasks.budget import AnnotationCosts, mean_patch_cost, patches_for_budget
from eoreps.tasks.experiments.runner import Row, TableSpec, Variant, run_grid, write_outputs
from eoreps.tasks.fit import FitConfig, FitResult

PUBLISHED = """| supervision (Bearman et al. 2016, PASCAL VOC, real data) | annotation time per image |
|---|---|
| image-level labels | 20.0 s |
| one point per class present | 22.1 s |
| full masks | 239.7 s |

Lesson reported there: at an equal annotation budget, point labels trained a better model than \
image-level labels
or (fewer) full masks. These are the times our budget model is scaled from (eoreps.tasks.budget); \
we quote no mIoU.
"""

LABELS = {"full": "full masks", "image": "image labels", "points": "points"}


def supervision_name(supervision: str, k: int) -> str:
    """Row label of a supervision kind (``points k=5``)."""
    return f"points k={k}" if supervision == "points" else LABELS[supervision]


@dataclasses.dataclass(frozen=True)
class WeakSettings:
    """Sizes of the weak-supervision experiment (``quick`` shrinks everything to seconds).

    Attributes:
        budgets: annotation budgets, in units of full masks (the budget buys this many full masks).
        supervisions: ``(supervision, points per class)`` pairs compared.
        passes: training samples seen per run (sets the epochs); min_epochs, max_epochs: its clamp.
        costs: the annotation cost model.
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    budgets: tuple[int, ...] = (16, 48, 144)
    supervisions: tuple[tuple[str, int], ...] = (("full", 1), ("image", 1), ("points", 1), ("points", 5))
    passes: int = 4800
    min_epochs: int = 2
    max_epochs: int = 100
    max_eval: int | None = 200
    backbone: str = "cnn-tiny"
    batch_size: int = 32
    modalities: tuple[str, ...] = ("s2",)
    cam_pooling: str = "lse"
    simeo_n: int | None = None
    costs: AnnotationCosts = AnnotationCosts()

    smoke: bool = False  # set by quick(): the outputs say it is a smoke run, not a measurement

    @classmethod
    def quick(cls) -> WeakSettings:
        return cls(
            smoke=True,
            seeds=(0,),
            budgets=(4,),
            passes=32,
            min_epochs=1,
            max_epochs=1,
            max_eval=32,
            simeo_n=400,
        )


def _pool_masks(s: WeakSettings) -> tuple[np.ndarray, int]:
    """Masks ``(N, H, W)`` of the SimEO training split (the pool the patches are drawn from), and ``K``."""
    from eoreps.data.datasets.simeo import SimEODataset

    ds = SimEODataset(split="train", modalities=list(s.modalities), n=s.simeo_n)
    return np.asarray(ds.arrays["mask"])[ds.indices], len(ds.classes)


def variants(s: WeakSettings, masks: np.ndarray, num_classes: int) -> tuple[list[Variant], dict[str, Row]]:
    """Budget x supervision, each with its number of training patches and epochs; and per variant slug its
    budget bookkeeping (``budget_s``, ``patches``, ``cost_s``)."""
    full_cost = s.costs.patch_cost("full", num_classes)
    out, meta = [], {}
    for b in s.budgets:
        budget_s = b * full_cost
        for sup, k in s.supervisions:
            cost = mean_patch_cost(s.costs, sup, masks, num_classes, k)
            n = patches_for_budget(budget_s, cost, len(masks))
            epochs = int(np.clip(round(s.passes / n), s.min_epochs, s.max_epochs))
            labels = {"budget": f"{budget_s / 60:.0f} min", "supervision": supervision_name(sup, k)}
            out.append(
                Variant(
                    labels,
                    {
                        "supervision": sup,
                        "points_per_class": k,
                        "max_train": n,
                        "epochs": epochs,
                        "patience": epochs,
                    },
                )
            )
            meta[out[-1].slug] = {"budget_s": budget_s, "patches": n, "cost_s": cost}
    return out, meta


def _rows_fn(meta: dict[str, Row]):
    def rows(result: FitResult, variant: Variant) -> list[Row]:
        m = meta[variant.slug]
        return [
            {
                "split": split,
                **values,
                "budget_s": m["budget_s"],
                "budget_min": m["budget_s"] / 60,
                "patches": m["patches"],
                "cost_per_patch_s": m["cost_s"],
            }
            for split, values in result.metrics.items()
        ]

    return rows


def run_weak_supervision(out: str | Path, settings: WeakSettings | None = None,
                         command: str = "") -> tuple[pd.DataFrame, dict[str, Path]]:
    """Run the grid and write the tables and the mIoU-vs-budget figure into ``out``."""
    from eoreps.report.plots import metric_curves, save_figure

    s = settings or WeakSettings()
    out = Path(out)
    masks, k = _pool_masks(s)
    grid, meta = variants(s, masks, k)
    base = FitConfig(task="segment", data="simeo", modalities=list(s.modalities), backbone=s.backbone,
                     batch_size=s.batch_size, max_eval=s.max_eval, simeo_n=s.simeo_n, eval_splits=["test"],
                     cam_pooling=s.cam_pooling)
    df = run_grid(base, grid, s.seeds, out, rows_fn=_rows_fn(meta))
    spec = TableSpec(by=["budget", "supervision"],
                     metrics={"segment/miou": "mIoU (%)", "segment/pixel_acc": "pixel accuracy (%)",
                              "patches": "training patches", "epochs": "epochs"},
                     scale={"segment/miou": 100, "segment/pixel_acc": 100},
                     digits={"segment/miou": 1, "segment/pixel_acc": 1, "patches": 0, "epochs": 0})
    plot = df.assign(miou=df["segment/miou"].astype(float) * 100)
    fig = metric_curves(
        plot,
        "budget_min",
        "miou",
        "supervision",
        title="mIoU vs annotation budget",
        logx=True,
        synthetic=True,
        ylabel="test mIoU (%)",
    )
    fig.axes[0].set_xlabel("annotation budget (minutes, log scale)")
    save_figure(fig, out / "weak_supervision.png")
    c = s.costs
    costs = ", ".join(f"{supervision_name(sup, kk)} {mean_patch_cost(c, sup, masks, k, kk):.1f} s"
                      for sup, kk in s.supervisions)
    notes = [
        f"SimEO (synthetic) land-cover segmentation, {k} classes, inputs {'+'.join(s.modalities)}, backbone "
        f"{s.backbone} + U-Net decoder, seeds {list(s.seeds)}, <= {s.max_eval} test patches; mIoU against "
        "the true masks. Budgets are the cost of "
        f"{', '.join(str(b) for b in s.budgets)} full masks; mean cost per patch: {costs} (budget model in "
        f"eoreps.tasks.budget: {c.tag_s:g} s per class tag, {c.point_s:g} s per point, full mask = "
        f"{c.full_over_image:.2f} x image labels, after Bearman et al. 2016; our assumption). Each run sees "
        f"about {s.passes} training samples (epochs clamped to {s.min_epochs}..{s.max_epochs}); validation "
        "labels are of the same kind and not counted. Image labels: SimEO's multi-hot tags (classes covering "
        f">= 10 % of a patch), {s.cam_pooling.upper()} pooling of the class map; points: k pixels per class "
        "present, fixed per patch and seed."
    ]
    paths = write_outputs(
        df,
        out,
        "weak_supervision",
        "Weak supervision at equal annotation budgets",
        spec,
        published=PUBLISHED,
        notes=notes,
        command=command,
        smoke=s.smoke,
        extra_figures=[
            (
                "Test mIoU vs annotation budget (mean ± std over seeds; SimEO, synthetic)",
                "weak_supervision.png",
            )
        ],
    )
    paths["figure"] = out / "weak_supervision.png"
    return df, paths
