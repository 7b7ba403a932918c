"""``eoreps experiment fusion``: which modalities help, fused early or late (after ben-ge,
Mommert et al. 2023).

Grid: single modalities (S2, S1, DEM, weather, season; one encoder each, so early = late) and unions
(S2+S1, S2+S1+DEM, all five) x {early, late} fusion, for land-cover classification (accuracy, macro F1) and
segmentation (mIoU, pixel accuracy) on SimEO, mean +- std over seeds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from eoreps.tasks.experiments.runner import TableSpec, Variant, run_grid, write_outputs
from eoreps.tasks.experiments.settings import base_config, smoke_settings

NAMES = {"s2": "S2", "s1": "S1", "dem": "DEM", "weather": "weather", "season": "season"}
SINGLES = [["s2"], ["s1"], ["dem"], ["weather"], ["season"]]
UNIONS = [["s2", "s1"], ["s2", "s1", "dem"], ["s2", "s1", "dem", "weather", "season"]]

PUBLISHED = """| modalities (ben-ge, real data) | classification F1 | segmentation IoU |
|---|---|---|
| S2 | 77.1 | 39.2 |
| S1 | 73.1 | 31.7 |
| S2 + S1 | 82.8 | 39.7 |
| S2 + S1 + climate zone | 85.1 | 39.6 |

Mommert et al. 2023 (ben-ge): late fusion usually helps more than early fusion; which modalities help depends
on the task and the data.
"""


@dataclasses.dataclass(frozen=True)
class FusionSettings:
    """Sizes of the fusion experiment (``quick`` shrinks everything to seconds)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 4
    max_train: int | None = 500
    max_eval: int | None = 300
    backbone: str = "cnn-small"
    batch_size: int = 64
    singles: tuple[tuple[str, ...], ...] = tuple(tuple(s) for s in SINGLES)
    unions: tuple[tuple[str, ...], ...] = tuple(tuple(u) for u in UNIONS)
    tasks: tuple[str, ...] = ("classify", "segment")
    simeo_n: int | None = None

    smoke: bool = False  # set by quick(): the outputs say it is a smoke run, not a measurement

    @classmethod
    def quick(cls) -> FusionSettings:
        return smoke_settings(
            cls,
            max_train=64,
            max_eval=64,
            batch_size=32,
            singles=(("s2",), ("season",)),
            unions=(("s2", "s1"),),
            simeo_n=400,
        )


def variants(settings: FusionSettings) -> list[Variant]:
    """The grid of the experiment."""
    out = []
    for task in settings.tasks:
        for mods in settings.singles:
            out.append(
                Variant(
                    {"task": task, "modalities": "+".join(NAMES[m] for m in mods), "fusion": "single"},
                    {"task": task, "modalities": list(mods), "fusion": "late"},
                )
            )
        for mods in settings.unions:
            for fusion in ("early", "late"):
                out.append(
                    Variant(
                        {"task": task, "modalities": "+".join(NAMES[m] for m in mods), "fusion": fusion},
                        {"task": task, "modalities": list(mods), "fusion": fusion},
                    )
                )
    return out


def run_fusion(out: str | Path, settings: FusionSettings | None = None, data: str = "simeo",
               command: str = "") -> tuple[pd.DataFrame, dict[str, Path]]:
    """Run the grid and write the tables and figure into ``out``."""
    s = settings or FusionSettings()
    base = base_config(s, data=data)
    df = run_grid(base, variants(s), s.seeds, out)
    # one table: classification metrics from classify runs, segmentation metrics from segment runs
    cls = df[df["task"] == "classify"].rename(columns={"classify/acc": "acc", "classify/f1": "f1"})
    seg = df[df["task"] == "segment"].rename(
        columns={"segment/miou": "miou", "segment/pixel_acc": "pixel_acc"}
    )
    keys = ["modalities", "fusion", "seed"]
    merged = cls[keys + ["acc", "f1"]].merge(
        seg[keys + ["miou", "pixel_acc"]], on=keys, how="outer", sort=False
    )
    spec = TableSpec(
        by=["modalities", "fusion"],
        metrics={
            "f1": "classification F1 (%)",
            "acc": "accuracy (%)",
            "miou": "segmentation mIoU (%)",
            "pixel_acc": "pixel accuracy (%)",
        },
        scale={"f1": 100, "acc": 100, "miou": 100, "pixel_acc": 100},
        digits={"f1": 1, "acc": 1, "miou": 1, "pixel_acc": 1},
        figure_metric="f1",
        figure_x="modalities",
        figure_hue="fusion",
    )
    notes = [
        f"Backbone {s.backbone}, {s.epochs} epochs, <= {s.max_train} training and <= {s.max_eval} test "
        "patches "
        f"per run, seeds {list(s.seeds)}. 'single' = one modality (one encoder: early = late fusion; vector "
        "modalities get a small MLP). Land-cover classification is single-label (dominant class, macro F1); "
        "segmentation is 8-class land cover (mean IoU)."
    ]
    paths = write_outputs(merged, out, "fusion", "Modality fusion: early vs late", spec, published=PUBLISHED,
                          notes=notes, command=command, smoke=s.smoke)
    return merged, paths
