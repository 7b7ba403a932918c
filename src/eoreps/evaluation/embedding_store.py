"""Reading an embedding folder written by ``eoreps embed`` (format: ``embed.json``, ``meta.parquet``,
``<space>_<modality>.npy``, optional ``thumbs/<modality>.npy``), with one-line errors naming the file.

    emb = EmbeddingFolder.open("emb/")
    z = emb.array("joint", "s1")          # (N, D) float32, row order = emb.meta
    emb.meta[["id", "split", "label"]]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eoreps.errors import DataError
from eoreps.io import read_json

INDEX = "embed.json"
META = "meta.parquet"
FORMAT = "eoreps-embeddings"
SPACES = ("joint", "backbone")


def array_name(space: str, modality: str) -> str:
    """File name of one embedding array (``joint_s1.npy``)."""
    return f"{space}_{modality}.npy"


def _load_npy(path: Path, mmap: bool = False) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: missing; embed the data again with `eoreps embed`")
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise DataError(f"{path}: not a readable .npy file ({reason}); embed the data again") from None
    return arr


@dataclass
class EmbeddingFolder:
    """An opened embedding folder (see the module docstring).

    Attributes:
        path: the folder.
        index: ``embed.json``.
        meta: ``meta.parquet`` (one row per sample, in array row order).
    """

    path: Path
    index: dict[str, Any]
    meta: pd.DataFrame
    _arrays: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> EmbeddingFolder:
        """Open and check ``embed.json`` and ``meta.parquet`` of ``path`` (arrays are read on demand)."""
        path = Path(path)
        idx_path = path / INDEX
        if not path.is_dir() or not idx_path.is_file():
            raise DataError(f"{path}: no {INDEX}; pass the --out folder of `eoreps embed`")
        try:
            index = read_json(idx_path)
        except (ValueError, OSError, UnicodeDecodeError):
            raise DataError(f"{idx_path}: not valid JSON; embed the data again") from None
        if (
            not isinstance(index, dict)
            or index.get("format") != FORMAT
            or not isinstance(index.get("spaces"), dict)
        ):
            raise DataError(f"{idx_path}: not an eoreps embedding index (format '{FORMAT}' with 'spaces'); "
                            "embed the data again")
        meta_path = path / META
        if not meta_path.is_file():
            raise DataError(f"{meta_path}: missing; embed the data again with `eoreps embed`")
        try:
            meta = pd.read_parquet(meta_path)
        except Exception as e:  # pyarrow raises several unrelated types for a damaged file
            reason = " ".join(str(e).split())[:120] or type(e).__name__
            raise DataError(
                f"{meta_path}: not a readable parquet file ({reason}); embed the data again"
            ) from None
        if "split" not in meta.columns:
            raise DataError(f"{meta_path}: no 'split' column; embed the data again with `eoreps embed`")
        return cls(path, index, meta.reset_index(drop=True))

    @property
    def run_id(self) -> str:
        """The digest of the run that produced the embeddings."""
        return str(self.index.get("run_id", ""))

    @property
    def synthetic(self) -> bool:
        """The embedded data is SimEO."""
        return bool(self.index.get("synthetic", False))

    def modalities(self, space: str) -> list[str]:
        """Modality keys with an array in ``space`` (``[]`` if the run has no such space)."""
        return list((self.index["spaces"].get(space) or {}).keys())

    def check(self, space: str, modality: str) -> None:
        """A one-line error if ``embed.json`` lists no ``space`` / ``modality`` array."""
        where = self.path / INDEX
        if space not in self.index["spaces"] or not self.index["spaces"][space]:
            have = ", ".join(s for s in self.index["spaces"] if self.index["spaces"][s]) or "none"
            raise DataError(f"{where}: no '{space}' space in these embeddings (have: {have}); pass --space "
                            + ("backbone" if space == "joint" else "joint"))
        if modality not in self.index["spaces"][space]:
            have = ", ".join(self.modalities(space))
            raise DataError(
                f"{where}: the run never saw modality '{modality}' (its {space} embeddings: {have}); "
                "pass one of those"
            )

    def array(self, space: str, modality: str) -> np.ndarray:
        """``(N, D)`` float32 embeddings of ``modality`` in ``space``, checked against ``meta.parquet``."""
        key = (space, modality)
        if key not in self._arrays:
            self.check(space, modality)
            path = self.path / array_name(space, modality)
            arr = _load_npy(path)
            if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating):
                raise DataError(f"{path}: expected a 2-D float array (N, D), got {arr.dtype} {arr.shape}; "
                                "embed the data again")
            if len(arr) != len(self.meta):
                raise DataError(
                    f"{path}: {len(arr)} rows but {self.path / META} has {len(self.meta)}; the files "
                    "come from different embedding runs, embed the data again"
                )
            self._arrays[key] = arr.astype(np.float32, copy=False)
        return self._arrays[key]

    def thumbs(self, modality: str) -> np.ndarray | None:
        """``(N, 3, 32, 32)`` uint8 thumbnails of ``modality`` (the first modality of a stacked key), or
        None."""
        for name in (modality, modality.split("+")[0]):
            path = self.path / "thumbs" / f"{name}.npy"
            if path.is_file():
                arr = _load_npy(path, mmap=True)
                if arr.ndim == 4 and arr.shape[1] == 3 and len(arr) == len(self.meta):
                    return arr
                return None
        return None

    def ids(self, what: str) -> np.ndarray:
        """The sample ids; a one-line error naming ``meta.parquet`` when it has none (``what``: its role)."""
        if "id" not in self.meta.columns:
            raise DataError(f"{self.path / META}: the {what} has no 'id' column, so matches cannot be found; "
                            "embed the data again with `eoreps embed`")
        return self.meta["id"].astype(str).to_numpy()

    def split_rows(self, split: str) -> np.ndarray:
        """Row indices of ``split`` (a one-line error when it has none)."""
        rows = np.nonzero(self.meta["split"].astype(str).to_numpy() == split)[0]
        if len(rows) == 0:
            have = ", ".join(sorted(self.meta["split"].astype(str).unique())) or "none"
            raise DataError(
                f"{self.path / META}: split '{split}' is empty (splits: {have}); pass --splits with "
                "one of those"
            )
        return rows

    def splits(self) -> list[str]:
        """The splits present, in train/val/test order first."""
        have = list(dict.fromkeys(self.meta["split"].astype(str)))
        order = {"train": 0, "val": 1, "test": 2}
        return sorted(have, key=lambda s: (order.get(s, 3), have.index(s)))

    @property
    def multilabel(self) -> bool:
        """The meta has multi-label names (``labels``, ';'-joined)."""
        return "labels" in self.meta.columns and bool(self.meta["labels"].notna().any())

    def label_names(self) -> list[str]:
        """The class names found in the ``labels`` column (sorted; empty without one)."""
        if not self.multilabel:
            return []
        return sorted({n for v in self.meta["labels"] if isinstance(v, str) for n in v.split(";") if n})

    def label_matrix(self, classes: list[str] | None = None) -> tuple[np.ndarray, list[str]] | None:
        """``(N, K)`` multi-hot labels from ``labels`` (';'-joined names; columns = ``classes`` when
        they cover every name, else the names found) or ``label`` (int), with class names; None when
        the meta has neither."""
        if self.multilabel:
            lists = [
                [n for n in v.split(";") if n] if isinstance(v, str) else [] for v in self.meta["labels"]
            ]
            found = self.label_names()
            names = list(classes) if classes and set(found) <= set(classes) else found
            pos = {n: i for i, n in enumerate(names)}
            out = np.zeros((len(lists), len(names)), dtype=np.float32)
            for i, ls in enumerate(lists):
                for n in ls:
                    if n in pos:
                        out[i, pos[n]] = 1.0
            return out, names
        if "label" in self.meta.columns:
            y = pd.to_numeric(self.meta["label"], errors="coerce").fillna(-1).astype(np.int64).to_numpy()
            k = max(int(y.max()) + 1, 1) if len(y) else 1
            out = np.zeros((len(y), k), dtype=np.float32)
            ok = y >= 0
            out[np.nonzero(ok)[0], y[ok]] = 1.0
            names = list(self.index.get("classes") or [str(i) for i in range(k)])
            return out, names
        return None
