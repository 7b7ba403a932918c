"""BigEarthNet S1+S2 pairs stored as arrays in one ``.npz`` (format ``"bigearthnet-npz"``).

Expected arrays (the layout of ``ben_s1s2_real.npz``, handy for smoke runs)::

    s2_10m       (N, 4, 120, 120) uint16   B02, B03, B04, B08
    s2_20m       (N, 6,  60,  60) uint16   B05, B06, B07, B8A, B11, B12
    s2_60m       (N, 2,  20,  20) uint16   B01, B09
    s1_vv_vh_db  (N, 2, 120, 120) float32  VV, VH in dB
    labels19     (N, 19)                   BigEarthNet-19 multi-hot
    class_names  (19,)   s2_name, s1_name, split (N,) strings; optional band_order, source

The optional ``band_order`` (``"10m:B02,B03,B04,B08"``, ...) overrides the band lists above. Bands are
brought to one grid exactly as the folder loaders do (:mod:`eoreps.data.datasets._raster`), so the
three BigEarthNet formats give identical tensors for the same patch. ``split="all"`` includes rows
whose ``split`` is empty; ``"train"``/``"val"``/``"test"`` select by the ``split`` column.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from eoreps.data.bigearthnet_classes import BEN19_CLASSES
from eoreps.data.datasets._raster import check_mode, stack_on_grid
from eoreps.data.datasets.base import EODataset, Sample
from eoreps.data.modalities import S1, S2_L2A_BANDS
from eoreps.errors import ConfigError, DataError

_GROUPS = {
    "s2_10m": ("B02", "B03", "B04", "B08"),
    "s2_20m": ("B05", "B06", "B07", "B8A", "B11", "B12"),
    "s2_60m": ("B01", "B09"),
}
REQUIRED_KEYS = ("s2_10m", "s2_20m", "s2_60m", "s1_vv_vh_db", "labels19", "s2_name")
SPLITS = ("all", "train", "val", "test")


def missing_arrays(path: Path) -> list[str] | None:
    """The arrays of :data:`REQUIRED_KEYS` that the ``.npz`` at ``path`` lacks (``[]``: none), or ``None``
    when it is not a readable ``.npz`` (zip) file at all."""
    try:
        with zipfile.ZipFile(path) as z:
            names = {n.removesuffix(".npy") for n in z.namelist()}
    except (zipfile.BadZipFile, OSError):
        return None
    return [k for k in REQUIRED_KEYS if k not in names]


def is_ben_npz(path: Path) -> bool:
    """True if ``path`` is an ``.npz`` holding the arrays of :data:`REQUIRED_KEYS`."""
    path = Path(path)
    return path.is_file() and path.suffix == ".npz" and missing_arrays(path) == []


def _band_groups(z: np.lib.npyio.NpzFile) -> dict[str, tuple[str, ...]]:
    groups = dict(_GROUPS)
    if "band_order" in z.files:
        by_res = {f"s2_{entry.split(':', 1)[0]}": tuple(entry.split(":", 1)[1].split(","))
                  for entry in map(str, z["band_order"]) if ":" in entry}
        groups.update({k: v for k, v in by_res.items() if k in groups})
    return groups


@lru_cache(maxsize=2)
def _read_npz(
    path: str, mtime_ns: int, size: int
) -> tuple[dict[str, tuple[str, ...]], dict[str, np.ndarray]]:
    """Decompress the arrays once per file version (train/val/test views of one file share them)."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            missing = [k for k in REQUIRED_KEYS if k not in z.files]
            if missing:
                raise DataError(
                    f"{p}: missing arrays {', '.join(missing)}; expected the bigearthnet-npz layout"
                )
            groups = _band_groups(z)
            arrays = {k: z[k] for k in (*REQUIRED_KEYS, "s1_name", "split", "class_names") if k in z.files}
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{p}: unreadable .npz ({e}); re-create or re-download it") from None
    for a in arrays.values():
        a.setflags(write=False)  # shared between dataset instances
    return groups, arrays


class BigEarthNetNpz(EODataset):
    """Paired S1+S2 BigEarthNet patches from one ``.npz`` file (loaded into memory).

    Args:
        path: the ``.npz`` file.
        split: ``"all"`` (every row), ``"train"``, ``"val"`` or ``"test"`` (by the ``split`` array).
        modalities: subset of ``("s2", "s1")``; default both.
        size: side of the common output grid (120 = native 10 m).
        resampling: ``"bilinear"`` (default), ``"nearest"`` or ``"bicubic"``.

    Samples: ``s2`` (12, size, size) float32, ``s1`` (2, size, size) float32 dB, ``multilabel`` (19,)
    float32, ``id`` (S2 name), ``s1_id``.
    """

    classes = BEN19_CLASSES
    task = "multi"

    def __init__(
        self,
        path: str | Path,
        split: str = "all",
        modalities: Sequence[str] | None = None,
        size: int = 120,
        resampling: str = "bilinear",
    ) -> None:
        self.path = Path(path)
        if split not in SPLITS:
            raise ConfigError(f"unknown split '{split}'; choose one of: {', '.join(SPLITS)}")
        chosen = tuple(modalities) if modalities else ("s2", "s1")
        for m in chosen:
            if m not in ("s2", "s1"):
                raise ConfigError(f"modality '{m}' is not in {self.path}; choose from: s1, s2")
        self.modalities = tuple(m for m in ("s2", "s1") if m in chosen)
        self.band_names = {m: (S2_L2A_BANDS if m == "s2" else S1.bands) for m in self.modalities}
        self.size = size
        self.resampling = check_mode(resampling)
        self.split = split
        self._load()

    def _load(self) -> None:
        p = self.path
        if not p.is_file():
            raise DataError(
                f"{p}: file not found; expected a BigEarthNet .npz (s2_10m, s2_20m, s2_60m, s1_vv_vh_db, ...)"
            )
        st = p.stat()
        groups, arrays = _read_npz(str(p.resolve()), st.st_mtime_ns, st.st_size)
        n = len(arrays["s2_name"])
        for k in ("s2_10m", "s2_20m", "s2_60m", "s1_vv_vh_db", "labels19"):
            if arrays[k].shape[0] != n:
                raise DataError(
                    f"{p}: array {k} has {arrays[k].shape[0]} rows but s2_name has {n}; the file is "
                    "inconsistent"
                )
        for k, bands in groups.items():
            if arrays[k].ndim != 4 or arrays[k].shape[1] != len(bands):
                raise DataError(
                    f"{p}: array {k} has shape {arrays[k].shape}; expected (N, {len(bands)}, H, W)"
                )
        if set(b for bs in groups.values() for b in bs) != set(S2_L2A_BANDS):
            raise DataError(
                f"{p}: S2 groups cover {sorted(b for bs in groups.values() for b in bs)}; expected the 12 "
                "L2A bands"
            )
        if arrays["labels19"].shape[1:] != (len(BEN19_CLASSES),):
            raise DataError(f"{p}: labels19 has shape {arrays['labels19'].shape}; expected (N, 19)")
        if "class_names" in arrays and tuple(map(str, arrays["class_names"])) != BEN19_CLASSES:
            raise DataError(f"{p}: class_names differ from the BigEarthNet-19 names/order; cannot map labels")
        if arrays["s1_vv_vh_db"].shape[1:2] != (2,):
            raise DataError(
                f"{p}: s1_vv_vh_db has shape {arrays['s1_vv_vh_db'].shape}; expected (N, 2, H, W)"
            )
        splits = arrays["split"].astype(str) if "split" in arrays else np.full(n, "", dtype=str)
        self._rows = np.arange(n) if self.split == "all" else np.flatnonzero(splits == self.split)
        self._a = arrays
        # (group, channel) of each band in S2_L2A_BANDS order
        self._where = [(k, bands.index(b)) for b in S2_L2A_BANDS for k, bands in groups.items() if b in bands]

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def ids(self) -> list[str]:
        """S2 patch names of the selected rows."""
        return [str(self._a["s2_name"][i]) for i in self._rows]

    def __getitem__(self, index: int) -> Sample:
        i = int(self._rows[index])
        a = self._a
        sample: Sample = {"id": str(a["s2_name"][i])}
        if "s2" in self.modalities:
            bands = [a[k][i, c].astype(np.float32) for k, c in self._where]
            sample["s2"] = torch.from_numpy(stack_on_grid(bands, self.size, self.resampling))
        if "s1" in self.modalities:
            s1 = a["s1_vv_vh_db"][i].astype(np.float32)
            sample["s1"] = torch.from_numpy(stack_on_grid(list(s1), self.size, self.resampling))
        sample["multilabel"] = torch.from_numpy(a["labels19"][i].astype(np.float32))
        if "s1_name" in a:
            sample["s1_id"] = str(a["s1_name"][i])
        return sample

    def label_matrix(self) -> torch.Tensor:
        """``(N, 19)`` float32 multi-hot labels of the selected rows."""
        return torch.from_numpy(self._a["labels19"][self._rows].astype(np.float32))
