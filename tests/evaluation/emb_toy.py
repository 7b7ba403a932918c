"""A tiny embedding folder in the format of `eoreps embed` (written here, so the readers are tested alone)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def write_toy_embeddings(path: Path, n_per_split: int = 30, dim: int = 8, run_id: str = "run-a",
                         thumbs: bool = True, seed: int = 0, classes: int = 3) -> Path:
    """Joint space aligned (s1 = s2 + small noise), backbone space unrelated; labels shape the s2
    embedding."""
    rng = np.random.default_rng(seed)
    splits = ["train", "val", "test"]
    n = n_per_split * len(splits)
    labels = rng.integers(0, classes, n)
    centers = rng.normal(size=(classes, dim)) * 3
    base = centers[labels] + rng.normal(size=(n, dim))
    path.mkdir(parents=True, exist_ok=True)
    arrays = {"joint_s2": base, "joint_s1": base + 0.3 * rng.normal(size=(n, dim)),
              "backbone_s2": base, "backbone_s1": rng.normal(size=(n, dim))}
    for name, a in arrays.items():
        np.save(path / f"{name}.npy", a.astype(np.float32))
    names = [f"class{i}" for i in range(classes)]
    meta = pd.DataFrame({"row": np.arange(n), "id": [f"p{i:04d}" for i in range(n)],
                         "split": np.repeat(splits, n_per_split), "label": labels,
                         "label_name": [names[i] for i in labels],
                         "season": rng.choice(["winter", "summer"], n), "lat": rng.uniform(40, 60, n)})
    meta.to_parquet(path / "meta.parquet", index=False)
    index = {
        "format": "eoreps-embeddings",
        "version": 1,
        "run": "/runs/x",
        "run_id": run_id,
        "method": "multimodal",
        "modalities": ["s2", "s1"],
        "spaces": {"backbone": {"s2": dim, "s1": dim}, "joint": {"s2": dim, "s1": dim}},
        "data": "simeo",
        "synthetic": True,
        "splits": dict.fromkeys(splits, n_per_split),
        "classes": names,
        "created": "2026-01-01T00:00:00",
        "eoreps_version": "0",
    }
    (path / "embed.json").write_text(json.dumps(index))
    if thumbs:
        (path / "thumbs").mkdir(exist_ok=True)
        for m in ("s2", "s1"):
            np.save(path / "thumbs" / f"{m}.npy", rng.integers(0, 255, (n, 3, 32, 32), dtype=np.uint8))
    return path
