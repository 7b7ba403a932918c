"""BigEarthNet v2 ("reBEN") as distributed for training: parquet metadata + an LMDB of safetensors.

Layout (format ``"reben-v2"``)::

    <root>/metadata.parquet                                        patch_id, labels, split, s1_name, ...
    <root>/metadata_for_patches_with_snow_cloud_or_shadow.parquet  same columns, flagged patches
    <root>/BigEarthNet-V2-LMDB/data.mdb                            key: S2 or S1 patch name (ASCII)

Each LMDB value is a safetensors blob of one patch: S2 keys ``B01`` ... ``B12``, ``B8A`` (uint16,
native 120/60/20 px for 10/20/60 m), S1 keys ``VV``, ``VH`` (float32 dB, 120 px). Labels are the
19-class names directly. Splits are ``train``/``validation``/``test`` in the file; eoreps calls the
middle one ``val`` (``"validation"`` is accepted too).

As in the official loader (``configilm``), patches listed in the snow/cloud/shadow parquet are left
out unless ``include_snow_cloud=True``; :attr:`ReBEN.num_excluded` counts those left out. Bands are
brought to one grid as for v1 (:mod:`eoreps.data.datasets._raster`) and stacked in
:data:`eoreps.data.modalities.S2_L2A_BANDS` order.

The LMDB is opened read-only without a lock file (works on read-only media), once per process and
path, so DataLoader workers each open their own (LMDB environments must not cross ``fork``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eoreps.data.bigearthnet_classes import BEN19_CLASSES, multihot19_from_19
from eoreps.data.datasets._raster import check_mode, stack_on_grid
from eoreps.data.datasets.base import EODataset, Sample
from eoreps.data.modalities import S1, S2_L2A, S2_L2A_BANDS
from eoreps.errors import ConfigError, DataError

METADATA = "metadata.parquet"
SNOW_CLOUD = "metadata_for_patches_with_snow_cloud_or_shadow.parquet"
REQUIRED_COLUMNS = ("patch_id", "labels", "split", "s1_name")
_SPLIT_ALIASES = {
    "all": "all",
    "train": "train",
    "val": "validation",
    "validation": "validation",
    "test": "test",
}
_GSD = dict(zip(S2_L2A.bands, S2_L2A.gsd_m, strict=True))
# (resolved LMDB path, process id) -> open environment. An LMDB environment must not be used across
# fork(), and py-lmdb refuses to open a path twice in one process; so a forked child (DataLoader
# worker) closes what it inherited and opens its own on first use.
_ENVS: dict[tuple[str, int], Any] = {}
_READS: dict[tuple[str, int], int] = {}  # entries read through each open environment
RELEASE_EVERY = 32
"""Entries a process reads through one LMDB environment before closing it (the next read reopens it,
~0.2 ms). Closing unmaps the file, so the pages the reads faulted in leave the process's resident set: kept
mapped, they pile up towards the whole file (the kernel maps several MB of page cache around each ~0.3 MB
value read: ~6 MB per sample measured on Linux 6.18), which made ``eoreps data pack``'s peak RSS grow with
the archive (2.66 GB for 2,000 pairs, 5.60 GB for 20,000)."""


def _close_inherited_envs() -> None:
    for env in _ENVS.values():
        try:
            env.close()  # lock=False: closing only drops this process's mapping and file handle
        except Exception:  # a half-dead inherited handle must not break the worker
            pass
    _ENVS.clear()
    _READS.clear()


os.register_at_fork(after_in_child=_close_inherited_envs)


def find_lmdb(root: Path) -> Path | None:
    """The LMDB folder of a reBEN root: ``root`` itself or a direct sub-folder holding ``data.mdb``."""
    root = Path(root)
    if (root / "data.mdb").is_file():
        return root
    preferred = root / "BigEarthNet-V2-LMDB"
    if (preferred / "data.mdb").is_file():
        return preferred
    subs = (
        sorted(d for d in root.iterdir() if d.is_dir() and (d / "data.mdb").is_file())
        if root.is_dir()
        else []
    )
    return subs[0] if subs else None


def is_reben_folder(path: Path) -> bool:
    """True if ``path`` holds ``metadata.parquet`` and an LMDB (``data.mdb``)."""
    path = Path(path)
    return path.is_dir() and (path / METADATA).is_file() and find_lmdb(path) is not None


def read_metadata(path: Path, columns: Sequence[str] = REQUIRED_COLUMNS):
    """Read a reBEN metadata parquet; one-line DataError if unreadable or missing ``columns``."""
    import pandas as pd

    try:
        df = pd.read_parquet(path)
    except FileNotFoundError:
        raise DataError(f"{path}: metadata parquet is missing; expected the reBEN layout") from None
    except Exception as e:  # pyarrow raises ArrowInvalid/OSError variants for corrupt files
        raise DataError(
            f"{path}: unreadable parquet ({' '.join(str(e).split())[:150]}); re-download it"
        ) from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"{path}: missing columns {', '.join(missing)}; expected reBEN metadata ({', '.join(columns)})"
        )
    return df


class ReBEN(EODataset):
    """BigEarthNet v2 (reBEN) S1+S2 pairs from ``metadata.parquet`` + LMDB.

    Args:
        root: the folder holding the parquet files and the LMDB.
        split: ``"all"``, ``"train"``, ``"val"`` (or ``"validation"``) or ``"test"``.
        modalities: subset of ``("s2", "s1")``; default both.
        include_snow_cloud: also use the patches flagged for seasonal snow, cloud or shadow.
        size: side of the common output grid (120 = native 10 m).
        resampling: ``"bilinear"`` (default), ``"nearest"`` or ``"bicubic"``.

    Samples: ``s2`` (12, size, size) float32 reflectance x 1e4, ``s1`` (2, size, size) float32 dB,
    ``multilabel`` (19,) float32, ``id`` (S2 patch id), ``s1_id``.
    """

    classes = BEN19_CLASSES
    task = "multi"

    def __init__(
        self,
        root: str | Path,
        split: str = "all",
        modalities: Sequence[str] | None = None,
        include_snow_cloud: bool = False,
        size: int = 120,
        resampling: str = "bilinear",
    ) -> None:
        import pandas as pd

        self.root = Path(root)
        if split not in _SPLIT_ALIASES:
            raise ConfigError(f"unknown split '{split}'; choose one of: all, train, val, test")
        chosen = tuple(modalities) if modalities else ("s2", "s1")
        for m in chosen:
            if m not in ("s2", "s1"):
                raise ConfigError(f"modality '{m}' is not in reBEN; choose from: s1, s2")
        self.modalities = tuple(m for m in ("s2", "s1") if m in chosen)
        self.band_names = {m: (S2_L2A_BANDS if m == "s2" else S1.bands) for m in self.modalities}
        self.size = size
        self.resampling = check_mode(resampling)
        self.split = split
        if not self.root.is_dir():
            raise DataError(f"{self.root}: not a folder; expected a reBEN root with {METADATA} and an LMDB")
        lmdb_dir = find_lmdb(self.root)
        if lmdb_dir is None:
            raise DataError(
                f"{self.root}: no LMDB (data.mdb) found; expected {self.root / 'BigEarthNet-V2-LMDB'}"
            )
        self.lmdb_path = lmdb_dir
        meta = read_metadata(self.root / METADATA)
        snow_path = self.root / SNOW_CLOUD
        snow = read_metadata(snow_path) if snow_path.is_file() else meta.iloc[:0]
        if include_snow_cloud and not snow_path.is_file():
            raise DataError(f"{snow_path}: missing, so include_snow_cloud=True cannot add flagged patches")
        flagged = set(snow["patch_id"])
        meta = meta[~meta["patch_id"].isin(flagged)]
        wanted = _SPLIT_ALIASES[split]
        if wanted != "all":
            meta, snow = meta[meta["split"] == wanted], snow[snow["split"] == wanted]
        self.num_excluded = 0 if include_snow_cloud else len(snow)
        table = pd.concat([meta, snow]) if include_snow_cloud else meta
        self._ids = [str(x) for x in table["patch_id"]]
        self._s1 = [str(x) for x in table["s1_name"]]
        self._splits = [str(x) for x in table["split"]]
        self._labels = np.stack([multihot19_from_19(list(v), source=f"{self.root / METADATA} ({pid})")
                                 for pid, v in zip(self._ids, table["labels"], strict=True)]) \
            if len(table) else np.zeros((0, len(BEN19_CLASSES)), dtype=np.float32)
        self._check_keys()

    # ---------------------------------------------------------------- LMDB
    def _open(self):
        """The process-wide read-only environment of this LMDB (py-lmdb allows one per path and process)."""
        import lmdb

        key = (str(self.lmdb_path.resolve()), os.getpid())
        env = _ENVS.get(key)
        if env is None:
            try:
                env = lmdb.open(
                    key[0], readonly=True, lock=False, readahead=False, subdir=True, max_readers=512
                )
            except lmdb.Error as e:
                raise DataError(
                    f"{self.lmdb_path / 'data.mdb'}: unreadable LMDB ({e}); re-download or re-extract it"
                ) from None
            _ENVS[key] = env
        return env

    def _check_keys(self) -> None:
        import lmdb

        needed = [(pid, k) for pid, s1 in zip(self._ids, self._s1, strict=True)
                  for k, m in ((pid, "s2"), (s1, "s1")) if m in self.modalities]
        # RELEASE_EVERY keys per opening: each lookup maps the page cache around the pages it touches, so a
        # walk through one opening left (nearly) the whole file resident, a peak that grew with the archive
        for start in range(0, len(needed), RELEASE_EVERY):
            try:
                with self._open().begin(buffers=True) as txn:
                    for pid, key in needed[start:start + RELEASE_EVERY]:
                        if txn.get(key.encode()) is None:
                            raise DataError(
                                f"{self.lmdb_path / 'data.mdb'}: no entry for {key} (patch {pid}) listed in "
                                f"{METADATA}; the LMDB and metadata do not match"
                            )
            except lmdb.Error as e:
                raise DataError(
                    f"{self.lmdb_path / 'data.mdb'}: unreadable LMDB ({e}); re-download or re-extract it"
                ) from None
            finally:  # unmap what the lookups mapped (resident, in RSS); the next opening maps it anew
                self._release()

    def _release(self) -> None:
        """Close this process's environment of this LMDB (unmap the file); the next read reopens it."""
        key = (str(self.lmdb_path.resolve()), os.getpid())
        env = _ENVS.pop(key, None)
        if env is not None:
            env.close()
        _READS[key] = 0

    def _count_read(self) -> None:
        """Count a read; every :data:`RELEASE_EVERY` reads close this process's environment (unmap the file:
        ``txn.get`` returned a copy, so nothing still points into the map)."""
        key = (str(self.lmdb_path.resolve()), os.getpid())
        _READS[key] = _READS.get(key, 0) + 1
        if _READS[key] >= RELEASE_EVERY:
            self._release()

    def _blob(self, key: str) -> dict[str, np.ndarray]:
        import lmdb
        from safetensors import SafetensorError
        from safetensors.numpy import load

        where = f"{self.lmdb_path / 'data.mdb'} [{key}]"
        try:
            with self._open().begin() as txn:
                raw = txn.get(key.encode())
        except lmdb.Error as e:
            raise DataError(f"{where}: unreadable LMDB entry ({e}); re-download the LMDB") from None
        self._count_read()
        if raw is None:
            raise DataError(f"{where}: entry is missing; the LMDB and metadata do not match")
        try:
            return load(raw)
        except (SafetensorError, ValueError, TypeError) as e:
            raise DataError(f"{where}: corrupt safetensors blob ({e}); re-download the LMDB") from None

    # ---------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> list[str]:
        """S2 patch ids in index order."""
        return list(self._ids)

    def _bands(self, key: str, names: Sequence[str], grid: dict[str, float]) -> np.ndarray:
        d = self._blob(key)
        where = f"{self.lmdb_path / 'data.mdb'} [{key}]"
        missing = [b for b in names if b not in d]
        if missing:
            raise DataError(f"{where}: bands {', '.join(missing)} are missing; found {', '.join(sorted(d))}")
        ref_name = "B02" if "B02" in names else names[0]
        ref = d[ref_name]
        if ref.ndim != 2 or ref.shape[0] != ref.shape[1]:
            raise DataError(f"{where}: band {ref_name} has shape {ref.shape}; expected a square 2-D patch")
        out = []
        for b in names:
            side = int(round(ref.shape[0] * grid[ref_name] / grid[b]))
            if d[b].shape != (side, side):
                raise DataError(
                    f"{where}: band {b} has shape {d[b].shape}; expected {(side, side)} next to {ref_name} "
                    f"{ref.shape}"
                )
            out.append(d[b].astype(np.float32))
        return stack_on_grid(out, self.size, self.resampling)

    def __getitem__(self, index: int) -> Sample:
        pid = self._ids[index]
        sample: Sample = {"id": pid}
        if "s2" in self.modalities:
            sample["s2"] = torch.from_numpy(self._bands(pid, S2_L2A_BANDS, _GSD))
        if "s1" in self.modalities:
            sample["s1"] = torch.from_numpy(self._bands(self._s1[index], S1.bands, {"VV": 10.0, "VH": 10.0}))
        sample["multilabel"] = torch.from_numpy(self._labels[index].copy())
        sample["s1_id"] = self._s1[index]
        return sample

    def label_matrix(self) -> torch.Tensor:
        """``(N, 19)`` float32 multi-hot labels from the metadata (no LMDB reads)."""
        return torch.from_numpy(self._labels.copy())
