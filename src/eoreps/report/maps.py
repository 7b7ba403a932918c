"""2-D maps of a representation space: embeddings projected by UMAP (``pip install eoreps[umap]``) or, without
it, scikit-learn's t-SNE (fixed seed), one panel per colour key (class, season, latitude; for model zoos test
accuracy, epoch, hyperparameters). The title names the projection and the subsampling.

    plot_embedding_map("emb/", "joint", "s2", out_png="emb/map_joint_s2.png")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eoreps.errors import DataError
from eoreps.report.plots import _titled, plt, save_figure

MAX_POINTS = 5000
SMALL_MAP = 2000  # fewer points: t-SNE on one thread
CATEGORICAL_MAX = 20  # a numeric key with at most this many distinct values gets a legend, not a colorbar


def project_2d(z: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """``(N, D)`` -> ``(N, 2)`` by UMAP if ``umap-learn`` is installed, else t-SNE; returns the method's
    name."""
    z = np.asarray(z, dtype=np.float32)
    n = len(z)
    if n < 3:
        return np.pad(z[:, :2], ((0, 0), (0, max(0, 2 - z.shape[1])))), "raw coordinates"
    try:
        import umap  # optional extra: eoreps[umap]
    except ImportError:
        umap = None
    if umap is not None:
        reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed)
        return np.asarray(reducer.fit_transform(z)), f"UMAP (seed {seed})"
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(2, (n - 1) // 3)))
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    # 500 iterations (sklearn's default 1000): the layout settles well before, at half the time. Small maps
    # run on one OpenMP thread: on a busy machine idle-spinning threads made a 40-point t-SNE take seconds.
    with threadpool_limits(1 if n < SMALL_MAP else None, user_api="openmp"):
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                  max_iter=500).fit_transform(z)
    return np.asarray(xy), f"t-SNE (seed {seed}, perplexity {perplexity:g}; UMAP: pip install eoreps[umap])"


def subsample(n: int, max_points: int = MAX_POINTS, seed: int = 0) -> np.ndarray:
    """Sorted row indices of at most ``max_points`` of ``n`` rows (all rows when there are few)."""
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def _panel(ax: Any, fig: Any, xy: np.ndarray, name: str, values: pd.Series) -> None:
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and values.nunique(dropna=True) > CATEGORICAL_MAX:
        sc = ax.scatter(
            xy[:, 0], xy[:, 1], c=values.astype(float).to_numpy(), s=4, cmap="viridis", linewidths=0
        )
        fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.02).set_label(name, fontsize=8)
    else:
        cats = list(dict.fromkeys(sorted(values.dropna().astype(str).unique())))
        cmap = plt.get_cmap("tab10" if len(cats) <= 10 else "tab20")
        for i, c in enumerate(cats):
            m = (values.astype(str) == c).to_numpy()
            ax.scatter(xy[m, 0], xy[m, 1], s=4, color=cmap(i % cmap.N), label=c, linewidths=0)
        if cats:
            ax.legend(fontsize=6, markerscale=2.5, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False,
                      ncol=1 if len(cats) <= 12 else 2)
    ax.set_title(name, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def map_figure(z: np.ndarray, colours: Mapping[str, Sequence[Any] | pd.Series], path: str | Path, title: str,
               synthetic: bool = False, max_points: int = MAX_POINTS, seed: int = 0) -> Path:
    """Project ``z`` to 2-D and save one panel per colour key (legend for categories, colorbar for numbers).

    Args:
        z: ``(N, D)`` embeddings.
        colours: key -> ``N`` values (e.g. ``{"label": names, "lat": degrees}``).
        path: the PNG.
        title: figure title; the projection and any subsampling are appended.
        synthetic: SimEO data (the title says so).
        max_points: subsample to at most this many points (seeded).
        seed: subsampling and projection seed.
    """
    if not colours:
        raise DataError(f"{path}: nothing to colour the map by")
    rows = subsample(len(z), max_points, seed)
    xy, how = project_2d(np.asarray(z)[rows], seed)
    shown = f"{len(rows):,} of {len(z):,} points" if len(rows) < len(z) else f"{len(rows):,} points"
    n = len(colours)
    fig, axes = plt.subplots(1, n, figsize=(4.4 * n, 3.9), squeeze=False)
    for ax, (name, values) in zip(axes[0], colours.items(), strict=True):
        _panel(ax, fig, xy, name, pd.Series(np.asarray(values, dtype=object)[rows]).infer_objects())
    fig.suptitle(_titled(f"{title}: {how}, {shown}", synthetic), fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_embedding_map(
    emb_dir: str | Path,
    space: str,
    modality: str,
    color_by: Sequence[str] = ("label", "season", "lat"),
    out_png: str | Path | None = None,
    split: str | None = None,
    max_points: int = MAX_POINTS,
    seed: int = 0,
) -> Path:
    """The map of one embedding array of an ``eoreps embed`` folder, one panel per ``color_by`` key that
    ``meta.parquet`` has (``label`` shown by class name).

    Args:
        emb_dir: the embedding folder.
        space, modality: which array (``joint``/``backbone``, ``s2``...).
        color_by: meta columns to colour by (absent ones are skipped; none present is an error).
        out_png: the PNG (default ``emb_dir/map_<space>_<modality>.png``).
        split: only this split (default: every sample).
        max_points: subsample to at most this many points.
        seed: subsampling and projection seed.
    """
    from eoreps.evaluation.embedding_store import META, EmbeddingFolder

    emb = EmbeddingFolder.open(emb_dir)
    z = emb.array(space, modality)
    meta = emb.meta
    rows = emb.split_rows(split) if split else np.arange(len(meta))
    colours: dict[str, Any] = {}
    for key in color_by:
        if key == "label" and "label_name" in meta.columns:
            colours["label"] = meta["label_name"].to_numpy()[rows]
        elif key in meta.columns and meta[key].notna().any():
            colours[key] = meta[key].to_numpy()[rows]
    if not colours:
        raise DataError(f"{emb.path / META}: none of the columns {', '.join(color_by)} to colour the map by")
    out = Path(out_png) if out_png else emb.path / f"map_{space}_{modality}.png"
    title = f"{space} embeddings of {modality}" + (f" ({split} split)" if split else "")
    return map_figure(z[rows], colours, out, title, synthetic=emb.synthetic, max_points=max_points, seed=seed)


def plot_embedding_maps(emb_dir: str | Path, color_by: Sequence[str] = ("label", "season", "lat"),
                        max_points: int = MAX_POINTS, seed: int = 0) -> list[Path]:
    """One map per modality of an ``eoreps embed`` folder, in the joint space where it has one (else the
    backbone space): ``emb_dir/map_<space>_<modality>.png`` (what ``eoreps embed --plot`` draws)."""
    from eoreps.evaluation.embedding_store import EmbeddingFolder

    emb = EmbeddingFolder.open(emb_dir)
    pngs = []
    for modality in dict.fromkeys(emb.modalities("joint") + emb.modalities("backbone")):
        space = "joint" if modality in emb.modalities("joint") else "backbone"
        pngs.append(plot_embedding_map(emb_dir, space, modality, color_by, max_points=max_points, seed=seed))
    return pngs
