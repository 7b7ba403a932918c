"""Figures (matplotlib, Agg backend): sample views, metric bars, curves. Saved as PNG."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from eoreps.io import atomic_path  # noqa: E402

SYNTHETIC_TAG = "SimEO (synthetic data)"


def _titled(title: str, synthetic: bool) -> str:
    """``title`` with the synthetic-data tag appended unless it already says it is synthetic."""
    if not synthetic or "synthetic" in title.lower():
        return title
    return f"{title} — {SYNTHETIC_TAG}" if title else SYNTHETIC_TAG


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Save ``fig`` as PNG atomically and close it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def _stretch(img: np.ndarray) -> np.ndarray:
    """Percentile (2-98 %) stretch to [0, 1] per channel, NaN shown black."""
    out = np.zeros_like(img, dtype=np.float32)
    for c in range(img.shape[-1]):
        ch = img[..., c]
        finite = ch[np.isfinite(ch)]
        if finite.size == 0:
            continue
        lo, hi = np.percentile(finite, [2, 98])
        out[..., c] = np.clip((np.nan_to_num(ch, nan=lo) - lo) / max(hi - lo, 1e-6), 0, 1)
    return out


def _to_np(x: Any) -> np.ndarray:
    return x.detach().cpu().float().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float32)


def _rgb_indices(bands: Sequence[str]) -> list[int] | None:
    if all(b in bands for b in ("B04", "B03", "B02")):
        return [list(bands).index(b) for b in ("B04", "B03", "B02")]
    return None


def plot_sample(
    sample: Mapping[str, Any],
    band_names: Mapping[str, Sequence[str]],
    classes: Sequence[str] = (),
    suptitle: str | None = None,
    synthetic: bool = False,
) -> Any:
    """One row of panels: each image modality (RGB for S2, VV/VH for S1, colour map otherwise), the mask.

    Vector modalities and labels are written in the title. Returns the matplotlib figure.
    """
    panels: list[tuple[str, np.ndarray, dict[str, Any]]] = []
    for name, bands in band_names.items():
        if name not in sample:
            continue
        x = _to_np(sample[name])
        if x.ndim != 3:
            continue
        rgb = _rgb_indices(bands)
        if rgb is not None:
            panels.append((f"{name} RGB", _stretch(np.moveaxis(x[rgb], 0, -1)), {}))
        elif x.shape[0] == 2 and tuple(bands) == ("VV", "VH"):
            vv, vh = x[0], x[1]
            comp = np.stack([vv, vh, vv - vh], axis=-1)
            panels.append((f"{name} VV/VH/ratio", _stretch(comp), {}))
        elif name == "landcover":
            panels.append((name, x[0], {"cmap": "tab10", "vmin": 0, "vmax": 9, "interpolation": "nearest"}))
        else:
            panels.append((f"{name} {bands[0]}", x[0], {"cmap": "terrain" if name == "dem" else "viridis"}))
    if "mask" in sample:
        panels.append(("mask", _to_np(sample["mask"]), {"cmap": "tab10", "vmin": 0, "vmax": 9,
                                                         "interpolation": "nearest"}))
    n = max(len(panels), 1)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.9), squeeze=False)
    for ax, (title, img, kw) in zip(axes[0], panels, strict=False):
        ax.imshow(img, **kw)
        ax.set_title(title, fontsize=9)
    for ax in axes[0]:
        ax.axis("off")
    info = []
    if "label" in sample and classes:
        info.append(f"label: {classes[int(_to_np(sample['label']))]}")
    if "multilabel" in sample and classes:
        ml = _to_np(sample["multilabel"])
        info.append("labels: " + ", ".join(c for c, v in zip(classes, ml, strict=False) if v > 0.5))
    if "id" in sample:
        info.append(str(sample["id"]))
    title = " | ".join(x for x in [suptitle, *info, SYNTHETIC_TAG if synthetic else None] if x)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig


def bar_with_errors(
    df: pd.DataFrame, x: str, metric: str, hue: str | None = None, title: str = "", synthetic: bool = False,
    ylabel: str | None = None,
) -> Any:
    """Mean +- std bars of ``metric`` over seeds (rows) grouped by ``x`` (and ``hue``)."""
    groups = list(dict.fromkeys(df[x]))
    hues = list(dict.fromkeys(df[hue])) if hue else [None]
    width = 0.8 / len(hues)
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(groups) * max(1, len(hues) / 2)), 3.6))
    for i, h in enumerate(hues):
        sub = df if h is None else df[df[hue] == h]
        means = [sub[sub[x] == g][metric].mean() for g in groups]
        stds = [sub[sub[x] == g][metric].std(ddof=1) if (sub[x] == g).sum() > 1 else 0.0 for g in groups]
        pos = np.arange(len(groups)) + (i - (len(hues) - 1) / 2) * width
        ax.bar(pos, means, width, yerr=np.nan_to_num(stds), capsize=3, label=None if h is None else str(h))
    ax.set_xticks(np.arange(len(groups)), [str(g) for g in groups], rotation=30, ha="right")
    ax.set_ylabel(ylabel or metric)
    ax.set_title(_titled(title, synthetic), fontsize=10)
    if hue:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


_STYLES = ("-", "--", ":", "-.")


def metric_curves(
    df: pd.DataFrame, x: str, metric: str, line: str, title: str = "", logx: bool = False,
    synthetic: bool = False, ylabel: str | None = None, color: str | None = None, style: str | None = None,
) -> Any:
    """Mean +- std of ``metric`` against ``x``, one line per value of ``line`` (e.g. label-efficiency).

    ``color`` / ``style``: optional columns whose value picks a line's colour / line style (e.g. colour by
    method, dashes by protocol), so twenty lines stay readable; with more than six lines the legend moves
    outside the axes.
    """
    groups = list(df.groupby(line, sort=False))
    keys = list(dict.fromkeys(str(g[color].iloc[0]) if color else str(name) for name, g in groups))
    cmap = plt.get_cmap("tab10" if len(keys) <= 10 else "tab20")
    colours = {k: cmap(i % cmap.N) for i, k in enumerate(keys)}
    styles = (
        {k: _STYLES[i % len(_STYLES)] for i, k in enumerate(dict.fromkeys(df[style].astype(str)))}
        if style
        else {}
    )
    many = len(groups) > 6
    fig, ax = plt.subplots(figsize=(9.5, 4.8) if many else (6, 4))
    for name, g in groups:
        c = colours[str(g[color].iloc[0]) if color else str(name)]
        ls = styles.get(str(g[style].iloc[0]), "-") if style else "-"
        agg = g.groupby(x)[metric].agg(["mean", "std"]).reset_index().sort_values(x)
        ax.plot(agg[x], agg["mean"], marker="o", markersize=4, color=c, linestyle=ls, label=str(name))
        ax.fill_between(
            agg[x],
            agg["mean"] - agg["std"].fillna(0),
            agg["mean"] + agg["std"].fillna(0),
            color=c,
            alpha=0.08 if many else 0.2,
        )
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel or metric)
    ax.set_title(_titled(title, synthetic), fontsize=10)
    ax.grid(alpha=0.3)
    if many:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    else:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
