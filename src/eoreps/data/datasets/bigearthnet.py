"""BigEarthNet v1 in its native folder layout (Sentinel-2, Sentinel-1, or both paired).

On-disk layout (as distributed by TU Berlin and ``bigearthnet-common``)::

    BigEarthNet-S2/<S2 patch>/<S2 patch>_B01.tif ... _B12.tif, _B8A.tif   (12 single-band GeoTIFFs)
                             /<S2 patch>_labels_metadata.json              ("labels": 43-class names, ...)
    BigEarthNet-S1/<S1 patch>/<S1 patch>_VV.tif, _VH.tif                   (backscatter in dB, float32)
                             /<S1 patch>_labels_metadata.json              (+ "corresponding_s2_patch")

Sentinel-2 bands come at 10 m (B02-B04, B08: 120 x 120 px), 20 m (B05-B07, B8A, B11, B12: 60 x 60)
and 60 m (B01, B09: 20 x 20). They are brought to one ``size x size`` grid (default 120, the 10 m
grid) with bilinear, area-aligned resampling (see :mod:`eoreps.data.datasets._raster` for why and
for the other modes) and stacked in :data:`eoreps.data.modalities.S2_L2A_BANDS` order
(B01, B02, B03, B04, B05, B06, B07, B08, B8A, B09, B11, B12). Sentinel-1 gives ``(VV, VH)`` in dB.
Labels are converted from the 43 CLC classes to BigEarthNet-19 (:mod:`eoreps.data.bigearthnet_classes`).

Pairing: an S1 patch's metadata names its S2 twin (``corresponding_s2_patch``); when both roots are
given every S2 patch must have its S1 twin (and vice versa), and samples are keyed by the S2 name.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from eoreps.data.bigearthnet_classes import BEN19_CLASSES, multihot19_from_43
from eoreps.data.datasets._raster import check_mode, read_band, stack_on_grid
from eoreps.data.datasets.base import EODataset, Sample
from eoreps.data.modalities import S1, S2_L2A, S2_L2A_BANDS
from eoreps.errors import ConfigError, DataError

S1_BANDS: tuple[str, ...] = S1.bands
_GSD = dict(zip(S2_L2A.bands, S2_L2A.gsd_m, strict=True))
SPLITS = ("all", "train", "val", "test")


@dataclass(frozen=True)
class _Patch:
    """One indexed sample: S2 and/or S1 folder and its 43-class label names."""

    id: str
    s2_dir: Path | None
    s1_dir: Path | None
    labels: tuple[str, ...]
    s1_id: str | None = None


def read_v1_metadata(folder: Path) -> dict:
    """Parse ``<folder>/<folder name>_labels_metadata.json`` (one-line DataError when missing/corrupt)."""
    path = folder / f"{folder.name}_labels_metadata.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(
            f"{path}: labels metadata file is missing; every BigEarthNet patch folder needs one"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: unreadable labels metadata ({e}); re-download the patch") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("labels"), list):
        raise DataError(f"{path}: no 'labels' list in the labels metadata; expected BigEarthNet v1 JSON")
    return meta


def is_patch_folder(folder: Path, kind: str) -> bool:
    """True if ``folder`` looks like a v1 patch folder of ``kind`` ``"s2"`` (has ``_B02.tif``) or ``"s1"``."""
    probe = "B02" if kind == "s2" else "VV"
    return (folder / f"{folder.name}_{probe}.tif").exists() or (
        (folder / f"{folder.name}_labels_metadata.json").exists()
        and any(folder.glob(f"*_{probe}.tif"))
    )


def list_patch_folders(root: Path, kind: str) -> list[Path]:
    """Sorted patch folders of ``kind`` (``"s2"``/``"s1"``) directly under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"{root}: not a folder; expected a BigEarthNet v1 {kind.upper()} root with one folder per patch"
        )
    return sorted(p for p in root.iterdir() if p.is_dir() and is_patch_folder(p, kind))


def _check_bands(folder: Path, bands: Sequence[str]) -> None:
    for b in bands:
        f = folder / f"{folder.name}_{b}.tif"
        if not f.is_file():
            raise DataError(f"{f}: band file is missing; re-download or re-extract patch {folder.name}")


def _read_split_names(root: Path, split: str, split_dir: Path | None) -> set[str]:
    """Patch names (every column) of the official split file ``<split>.csv``, searched in
    split_dir/root/parent."""
    candidates = [split_dir] if split_dir is not None else [root, root.parent]
    for d in candidates:
        f = Path(d) / f"{split}.csv"
        if f.is_file():
            with f.open(newline="") as fh:
                # official v1 lists hold S2 names; the S1+S2 (BigEarthNet-MM) lists hold "S2,S1" pairs
                return {c.strip() for row in csv.reader(fh) for c in row if c.strip()}
    where = " or ".join(str(Path(d)) for d in candidates)
    raise ConfigError(
        f"BigEarthNet v1 folders carry no split and no {split}.csv was found in {where}; "
        "pass split_dir= holding the official train.csv/val.csv/test.csv, or use split='all'"
    )


class BigEarthNetV1(EODataset):
    """BigEarthNet v1 patches from the native folders; S2 only, S1 only, or paired S1+S2.

    Args:
        s2_root: folder of S2 patch folders (``BigEarthNet-v1.0`` / ``BigEarthNet-S2-Example``), or None.
        s1_root: folder of S1 patch folders (``BigEarthNet-S1-v1.0``), or None.
        split: ``"all"`` or ``"train"``/``"val"``/``"test"`` via the official split CSVs (see ``split_dir``).
        modalities: subset of the available ones (``"s2"`` with ``s2_root``, ``"s1"`` with ``s1_root``);
            default all available.
        size: side of the common output grid in pixels (120 = the native 10 m grid).
        resampling: ``"bilinear"`` (default), ``"nearest"`` or ``"bicubic"`` for bands not on the grid.
        split_dir: folder holding ``train.csv``/``val.csv``/``test.csv`` (patch names: S2 names, or
            ``S2,S1`` pairs per row). Default: ``s2_root`` (or ``s1_root``) and its parent.

    Samples: ``s2`` (12, size, size) float32 reflectance x 1e4, ``s1`` (2, size, size) float32 dB,
    ``multilabel`` (19,) float32, ``id`` (S2 name when S2 is loaded), ``s1_id`` when paired.
    """

    classes = BEN19_CLASSES
    task = "multi"

    def __init__(
        self,
        s2_root: str | Path | None = None,
        s1_root: str | Path | None = None,
        split: str = "all",
        modalities: Sequence[str] | None = None,
        size: int = 120,
        resampling: str = "bilinear",
        split_dir: str | Path | None = None,
    ) -> None:
        if s2_root is None and s1_root is None:
            raise ConfigError("BigEarthNetV1 needs s2_root, s1_root or both")
        if split not in SPLITS:
            raise ConfigError(f"unknown split '{split}'; choose one of: {', '.join(SPLITS)}")
        if size < 1:
            raise ConfigError(f"size must be a positive number of pixels, got {size}")
        self.s2_root = Path(s2_root) if s2_root is not None else None
        self.s1_root = Path(s1_root) if s1_root is not None else None
        available = tuple(m for m, r in (("s2", self.s2_root), ("s1", self.s1_root)) if r is not None)
        chosen = tuple(modalities) if modalities else available
        for m in chosen:
            if m not in available:
                raise ConfigError(
                    f"modality '{m}' is not available from the given BigEarthNet v1 folders; "
                    f"choose from: {', '.join(available)} (give s1_root/s2_root for the other)"
                )
        self.modalities = tuple(m for m in ("s2", "s1") if m in chosen)
        self.band_names = {m: (S2_L2A_BANDS if m == "s2" else S1_BANDS) for m in self.modalities}
        self.size = size
        self.resampling = check_mode(resampling)
        self.split = split
        self._patches = self._index()
        if split != "all":
            root = self.s2_root or self.s1_root
            assert root is not None
            names = _read_split_names(root, split, Path(split_dir) if split_dir else None)
            self._patches = [p for p in self._patches if p.id in names or (p.s1_id in names)]

    # ---------------------------------------------------------------- indexing
    def _index(self) -> list[_Patch]:
        s2 = list_patch_folders(self.s2_root, "s2") if self.s2_root is not None else []
        s1 = list_patch_folders(self.s1_root, "s1") if self.s1_root is not None else []
        if self.s2_root is not None and not s2:
            raise DataError(
                f"{self.s2_root}: no BigEarthNet S2 patch folders (<patch>/<patch>_B02.tif) found"
            )
        if self.s1_root is not None and not s1:
            raise DataError(f"{self.s1_root}: no BigEarthNet S1 patch folders (<patch>/<patch>_VV.tif) found")
        for f in s2:
            _check_bands(f, S2_L2A_BANDS)
        for f in s1:
            _check_bands(f, S1_BANDS)
        if self.s1_root is None:
            return [_Patch(f.name, f, None, tuple(read_v1_metadata(f)["labels"])) for f in s2]
        s1_by_twin: dict[str, Path] = {}
        s1_meta: dict[Path, dict] = {}
        for f in s1:
            meta = read_v1_metadata(f)
            s1_meta[f] = meta
            twin = meta.get("corresponding_s2_patch")
            if twin:
                s1_by_twin[str(twin)] = f
        if self.s2_root is None:
            return [_Patch(f.name, None, f, tuple(s1_meta[f]["labels"])) for f in s1]
        out = []
        s2_names = {f.name for f in s2}
        for f in s2:
            if f.name not in s1_by_twin:
                raise DataError(
                    f"{f}: no S1 patch in {self.s1_root} names this S2 patch as corresponding_s2_patch; "
                    "add its S1 twin or load S2 alone"
                )
            t = s1_by_twin[f.name]
            out.append(_Patch(f.name, f, t, tuple(read_v1_metadata(f)["labels"]), s1_id=t.name))
        for twin, f in s1_by_twin.items():
            if twin not in s2_names:
                raise DataError(
                    f"{f}: its S2 twin {twin} is missing from {self.s2_root}; add it or load S1 alone"
                )
        return out

    # ---------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self._patches)

    @property
    def ids(self) -> list[str]:
        """Sample identifiers in index order."""
        return [p.id for p in self._patches]

    def _read_s2(self, folder: Path) -> np.ndarray:
        ref = read_band(folder / f"{folder.name}_B02.tif")
        if ref.shape[0] != ref.shape[1]:
            raise DataError(
                f"{folder / (folder.name + '_B02.tif')}: non-square patch {ref.shape}; expected 120 x 120"
            )
        bands = []
        for b in S2_L2A_BANDS:
            factor = _GSD[b] / 10.0
            exp = int(round(ref.shape[0] / factor))
            bands.append(ref if b == "B02" else read_band(folder / f"{folder.name}_{b}.tif", (exp, exp)))
        return stack_on_grid(bands, self.size, self.resampling)

    def _read_s1(self, folder: Path) -> np.ndarray:
        vv = read_band(folder / f"{folder.name}_VV.tif")
        vh = read_band(folder / f"{folder.name}_VH.tif", vv.shape)
        return stack_on_grid([vv, vh], self.size, self.resampling)

    def __getitem__(self, index: int) -> Sample:
        p = self._patches[index]
        src = p.s2_dir if p.s2_dir is not None else p.s1_dir
        sample: Sample = {"id": p.id}
        if "s2" in self.modalities and p.s2_dir is not None:
            sample["s2"] = torch.from_numpy(self._read_s2(p.s2_dir))
        if "s1" in self.modalities and p.s1_dir is not None:
            sample["s1"] = torch.from_numpy(self._read_s1(p.s1_dir))
        sample["multilabel"] = torch.from_numpy(multihot19_from_43(p.labels, source=str(src)))
        if p.s1_id is not None:
            sample["s1_id"] = p.s1_id
        return sample

    def label_matrix(self) -> torch.Tensor:
        """``(N, 19)`` float32 multi-hot labels from the JSON metadata only (no rasters read)."""
        rows = [multihot19_from_43(p.labels, source=p.id) for p in self._patches]
        return torch.from_numpy(np.stack(rows)) if rows else torch.zeros(0, len(BEN19_CLASSES))
