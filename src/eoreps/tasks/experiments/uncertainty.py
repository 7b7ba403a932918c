"""``eoreps experiment uncertainty``: MC dropout and an uncertainty filter, in and out of distribution.

After Scheibenreif et al. (2022, NO2 from Sentinel-2 + Sentinel-5P): an NO2-like target regressed from
S2 + NO2-column inputs (late fusion) on SimEO (synthetic). Rows:

* plain model -- MSE loss, no dropout, one deterministic pass;
* MC dropout -- heteroscedastic head (Gaussian NLL) with dropout, mean of ``T`` stochastic passes;
* MC dropout + filter -- the same predictions without the ``q`` % most uncertain (threshold: the
  ``(100 - q)`` % quantile of the predictive std on the validation split, so a shifted split loses more).

Columns: observations, R^2, MAE, MSE on the in-distribution test split and on the ``shifted`` split (a
held-out region with other land cover and climate). A calibration figure (observed RMSE against predicted
std per bin, pooled over seeds) goes with the table.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from eoreps.tasks.experiments.runner import Row, TableSpec, Variant, run_grid, write_outputs
from eoreps.tasks.experiments.settings import base_config, smoke_settings
from eoreps.tasks.fit import FitResult
from eoreps.tasks.uncertainty import (
    UncertaintyFilter,
    calibration_figure,
    calibration_table,
    predict_regression,
    regression_scores,
)

PUBLISHED = """| region, period (Scheibenreif et al. 2022, real data) | model | uncertainty filter | n | \
R^2 | MAE | MSE |
|---|---|---|---|---|---|---|
| Europe 2018–20 | satellite | no | 3087 | 0.65 | 5.18 | 48.01 |
| Europe 2018–20 | MC dropout | no | 3087 | 0.60 | 5.52 | 50.85 |
| Europe 2018–20 | MC dropout | yes | 3061 | 0.66 | 4.99 | 45.25 |
| US 2018–20 (shifted) | satellite | no | 91 | 0.22 | 7.87 | 95.66 |
| US 2018–20 (shifted) | MC dropout | no | 91 | -2.44 | 11.39 | 422.29 |
| US 2018–20 (shifted) | MC dropout | yes | 86 | 0.28 | 7.86 | 89.92 |

Lesson reported: filtering the most uncertain few percent recovers accuracy, especially out of distribution.
"""

SPLITS = ("test", "shifted")


@dataclasses.dataclass(frozen=True)
class UncertaintySettings:
    """Sizes of the uncertainty experiment (``quick`` shrinks everything to seconds)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 8
    max_train: int | None = 1500
    max_eval: int | None = 600
    backbone: str = "cnn-small"
    batch_size: int = 64
    modalities: tuple[str, ...] = ("s2", "no2")
    dropout: float = 0.2
    passes: int = 20
    q: float = 5.0
    simeo_n: int | None = None

    smoke: bool = False  # set by quick(): the outputs say it is a smoke run, not a measurement

    @classmethod
    def quick(cls) -> UncertaintySettings:
        return smoke_settings(
            cls,
            max_train=64,
            max_eval=48,
            batch_size=32,
            passes=3,
            simeo_n=400,
        )


def _rows(settings: UncertaintySettings):
    def rows(result: FitResult, variant: Variant) -> list[Row]:
        module, dm = result.module, result.datamodule
        task = module.task_specs[0]
        mc = variant.labels["model"] != "plain model"
        passes = settings.passes if mc else 0
        preds = {s: predict_regression(module.model, dm.eval_dataloader(s), task, passes=passes)
                 for s in ("val", *SPLITS)}
        np.savez(
            result.out / "predictions.npz", **{f"{s}_{k}": v for s, p in preds.items() for k, v in p.items()}
        )
        out: list[Row] = []
        filt = UncertaintyFilter(settings.q).fit(preds["val"]["std"]) if mc else None
        for s in SPLITS:
            p = preds[s]
            out.append({"split": s, "filter": "no", **regression_scores(p["y"], p["mean"])})
            if filt is not None:
                keep = filt.keep(p["std"])
                out.append({"split": s, "filter": f"yes (q={settings.q:g} %)",
                            **regression_scores(p["y"][keep], p["mean"][keep])})
        return out

    return rows


def run_uncertainty(out: str | Path, settings: UncertaintySettings | None = None,
                    command: str = "") -> tuple[pd.DataFrame, dict[str, Path]]:
    """Train plain and MC-dropout models per seed, evaluate in and out of distribution, write outputs."""
    from eoreps.report.plots import save_figure

    s = settings or UncertaintySettings()
    out = Path(out)
    base = base_config(s, task="regress", data="simeo", modalities=list(s.modalities), fusion="late",
                       eval_splits=["val", *SPLITS], hidden=64)
    grid = [Variant({"model": "plain model"}, {"dropout": 0.0, "heteroscedastic": False}),
            Variant({"model": "MC dropout"}, {"dropout": s.dropout, "heteroscedastic": True})]
    df = run_grid(base, grid, s.seeds, out, rows_fn=_rows(s), keep_runs=True)
    df["row"] = df["model"] + np.where(df["filter"] == "no", "", " + filter")
    spec = TableSpec(
        by=["split", "row"],
        metrics={"n": "observations", "r2": "R^2", "mae": "MAE", "mse": "MSE"},
        digits={"n": 0},
        figure_metric="mse",
        figure_x="row",
        figure_hue="split",
    )
    # calibration of the MC-dropout predictive std, pooled over seeds
    tables = {}
    for split in SPLITS:
        ys, ms, ss = [], [], []
        for seed in s.seeds:
            f = (
                out
                / "runs"
                / Variant({"model": "MC dropout"}).slug
                / f"seed{seed}"
                / "fit"
                / "predictions.npz"
            )
            if f.is_file():
                z = np.load(f)
                ys.append(z[f"{split}_y"])
                ms.append(z[f"{split}_mean"])
                ss.append(z[f"{split}_std"])
        if ys:
            tables[split] = calibration_table(
                np.concatenate(ys), np.concatenate(ms), np.concatenate(ss), bins=10
            )
    extra = []
    if tables:
        fig = calibration_figure(tables, "MC dropout calibration — SimEO (synthetic)")
        save_figure(fig, out / "calibration.png")
        extra.append(
            ("Observed RMSE vs predicted std (10 equal-count bins; SimEO, synthetic)", "calibration.png")
        )
    notes = [
        f"SimEO (synthetic) NO2-like target from {'+'.join(s.modalities)} (late fusion), backbone "
        f"{s.backbone}, "
        f"{s.epochs} epochs, seeds {list(s.seeds)}; MC dropout p={s.dropout}, T={s.passes} passes; filter "
        f"q={s.q:g} % with its threshold from the validation split. 'shifted' is a held-out region."
    ]
    paths = write_outputs(
        df,
        out,
        "uncertainty",
        "Uncertainty: MC dropout and filtering",
        spec,
        published=PUBLISHED,
        notes=notes,
        command=command,
        smoke=s.smoke,
        extra_figures=extra,
    )
    return df, paths
