"""The retrieval figure: each row one query thumbnail and its top-5 gallery thumbnails, correct ones
framed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eoreps.report.plots import _titled, plt, save_figure

CORRECT = "#1a9641"
WRONG = "#bbbbbb"


def _show(ax: Any, thumb: np.ndarray, title: str, frame: str | None) -> None:
    ax.imshow(np.moveaxis(np.asarray(thumb), 0, -1))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7)
    for spine in ax.spines.values():
        spine.set_visible(frame is not None)
        if frame is not None:
            spine.set_edgecolor(frame)
            spine.set_linewidth(3.0 if frame == CORRECT else 0.8)


def retrieval_figure(query_thumbs: np.ndarray, gallery_thumbs: np.ndarray, examples: Sequence[dict[str, Any]],
                     path: str | Path, title: str = "", synthetic: bool = False, query_name: str = "query",
                     gallery_name: str = "gallery") -> Path:
    """Save the figure of ``examples`` (``query_row``, ``top`` gallery rows, ``correct`` flags) as PNG.

    Args:
        query_thumbs, gallery_thumbs: ``(N, 3, h, w)`` uint8 RGB thumbnails indexed by row.
        examples: one dict per query (:func:`eoreps.evaluation.retrieve.run_retrieve`).
        path: the PNG.
        title: figure title (SimEO adds the synthetic-data tag).
        query_name, gallery_name: modality names shown over the panels.
    """
    cols = 1 + max(len(e["top"]) for e in examples)
    fig, axes = plt.subplots(
        len(examples), cols, figsize=(1.3 * cols, 1.45 * len(examples) + 0.4), squeeze=False
    )
    for r, ex in enumerate(examples):
        _show(axes[r][0], query_thumbs[ex["query_row"]], f"{query_name} query", "#000000")
        for c in range(1, cols):
            ax = axes[r][c]
            if c - 1 >= len(ex["top"]):
                ax.axis("off")
                continue
            ok = bool(ex["correct"][c - 1])
            _show(ax, gallery_thumbs[ex["top"][c - 1]], f"{gallery_name} #{c}" + (" ✓" if ok else ""),
                  CORRECT if ok else WRONG)
    fig.suptitle(_titled(title + " (green frame: correct match)", synthetic), fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
