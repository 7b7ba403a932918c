"""Recognise a dataset on disk and open it as an :class:`~eoreps.data.datasets.base.EODataset`.

Formats (``detect_format`` returns the name):

=========================  ==================================================================
``simeo``                  a folder written by ``eoreps data generate`` (synthetic)
``bigearthnet-v1-s2``      BigEarthNet v1 S2 root: ``<patch>/<patch>_B02.tif ...`` + labels JSON
``bigearthnet-v1-s1``      BigEarthNet v1 S1 root: ``<patch>/<patch>_VV.tif, _VH.tif`` + JSON
``bigearthnet-v1-pairs``   a folder holding one v1 S2 root and one v1 S1 root (paired samples)
``reben-v2``               ``metadata.parquet`` + LMDB (BigEarthNet v2 / reBEN)
``bigearthnet-npz``        an ``.npz`` with ``s2_10m``, ``s2_20m``, ``s2_60m``, ``s1_vv_vh_db``, ...
``geotiff-folder``         ``labels.csv`` + ``<modality>/<id>.tif`` (your own data)
=========================  ==================================================================

Pairing BigEarthNet v1: a v1 S2 (or S1) root opens alone by default, so ``eoreps data inspect``
reports exactly that folder. Pairing with the sibling root (the one folder beside it of the other
kind, e.g. ``BigEarthNet-S1-Example`` next to ``BigEarthNet-S2-Example``) happens when asked:
``pair=True``, or ``modalities`` naming both ``s2`` and ``s1``. Opening the parent folder
(``bigearthnet-v1-pairs``) always pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eoreps.data.datasets.base import EODataset
from eoreps.errors import ConfigError, DataError

FORMATS = (
    "simeo", "bigearthnet-v1-s2", "bigearthnet-v1-s1", "bigearthnet-v1-pairs",
    "reben-v2", "bigearthnet-npz", "geotiff-folder",
)
_EXPECTED = (
    "a SimEO folder (eoreps data generate), a BigEarthNet v1 S2/S1 root (<patch>/<patch>_B02.tif or _VV.tif), "
    "a folder with both, a reBEN folder (metadata.parquet + LMDB), a BigEarthNet .npz, "
    "or a GeoTIFF folder (labels.csv + <modality>/<id>.tif)"
)
_PROBE_DIRS = 8  # sub-folders looked at to recognise a v1 root (roots may hold 590k patches)


def _is_simeo(path: Path) -> bool:
    try:
        from eoreps.data.simeo import is_simeo_folder
    except ImportError:  # SimEO generator not available in this build
        return False
    return bool(is_simeo_folder(path))


def _v1_kind(path: Path) -> str | None:
    """``"s2"``/``"s1"`` if ``path`` is a BigEarthNet v1 root (its first sub-folders are patch folders)."""
    from eoreps.data.datasets.bigearthnet import is_patch_folder

    seen = 0
    for child in path.iterdir():
        if not child.is_dir():
            continue
        for kind in ("s2", "s1"):
            if is_patch_folder(child, kind):
                return kind
        seen += 1
        if seen >= _PROBE_DIRS:
            break
    return None


def _v1_children(path: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {"s2": [], "s1": []}
    for child in sorted(p for p in path.iterdir() if p.is_dir()):
        kind = _v1_kind(child)
        if kind is not None:
            out[kind].append(child)
    return out


def _npz_problem(path: Path) -> str:
    """Why the ``.npz`` at ``path`` is not a BigEarthNet ``.npz`` (a damaged file or missing arrays)."""
    from eoreps.data.datasets.bigearthnet_npz import REQUIRED_KEYS, missing_arrays

    missing = missing_arrays(path)
    if missing is None:
        return "not a readable .npz (empty, truncated or not a zip archive); re-create or re-download it"
    return (f"missing arrays {', '.join(missing)}; a BigEarthNet .npz holds {', '.join(REQUIRED_KEYS)} "
            "(see docs/data.md)")


def detect_format(path: str | Path) -> str:
    """Name of the dataset format at ``path`` (one of :data:`FORMATS`).

    Raises:
        DataError: the path does not exist or matches no known format (message lists what was expected).
    """
    from eoreps.data.datasets.bigearthnet import is_patch_folder
    from eoreps.data.datasets.bigearthnet_npz import is_ben_npz
    from eoreps.data.datasets.geotiff_folder import is_geotiff_folder
    from eoreps.data.datasets.reben import is_reben_folder

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; expected {_EXPECTED}")
    if path.is_file():
        if is_ben_npz(path):
            return "bigearthnet-npz"
        if path.suffix == ".npz":
            raise DataError(f"{path}: {_npz_problem(path)}")
        raise DataError(f"{path}: unrecognised dataset file; expected {_EXPECTED}")
    try:
        if _is_simeo(path):
            return "simeo"
        if is_reben_folder(path):
            return "reben-v2"
        if is_geotiff_folder(path):
            return "geotiff-folder"
        kind = _v1_kind(path)
        if kind is not None:
            return f"bigearthnet-v1-{kind}"
        children = _v1_children(path)
    except PermissionError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror}); check its permissions") from None
    if children["s2"] and children["s1"]:
        if len(children["s2"]) > 1 or len(children["s1"]) > 1:
            names = ", ".join(p.name for p in children["s2"] + children["s1"])
            raise DataError(f"{path}: several BigEarthNet v1 roots ({names}); pass one S2 or S1 root")
        return "bigearthnet-v1-pairs"
    for kind in ("s2", "s1"):
        if is_patch_folder(path, kind):
            raise DataError(f"{path}: this is a single BigEarthNet patch folder; pass the folder that holds the patches")
    raise DataError(f"{path}: unrecognised dataset folder; expected {_EXPECTED}")


def _sibling(root: Path, kind: str) -> Path:
    """The single BigEarthNet v1 root of ``kind`` beside ``root`` (name with S2<->S1 swapped first)."""
    other = "S1" if kind == "s1" else "S2"
    mine = "S2" if kind == "s1" else "S1"
    guess = root.parent / root.name.replace(mine, other)
    if guess != root and guess.is_dir() and _v1_kind(guess) == kind:
        return guess
    found = [p for p in _v1_children(root.parent)[kind] if p != root]
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError(f"{root}: no BigEarthNet v1 {other} folder beside it to pair with; put it in {root.parent}")
    raise DataError(f"{root}: several {other} folders beside it ({', '.join(p.name for p in found)}); open the pair explicitly")


_RUN_SEED_OPTIONS = ("split_seed",)
"""Dataset options that default to the run's seed (``open_dataset(run_seed=...)``) where a format has them."""


def _construct(cls: type, *args: Any, run_seed: int | None = None, **kw: Any) -> EODataset:
    """``cls(*args, **kw)`` with unknown keyword options reported as a one-line ConfigError; options of
    :data:`_RUN_SEED_OPTIONS` the class has and ``kw`` lacks get ``run_seed`` (when given)."""
    import inspect

    params = inspect.signature(cls.__init__).parameters
    unknown = [k for k in kw if k not in params]
    if unknown:
        valid = [p for p in params if p not in ("self", "root", "path", "s2_root", "s1_root")]
        raise ConfigError(f"{cls.__name__} has no option {unknown[0]!r}; valid options: {', '.join(valid)}")
    if run_seed is not None:
        kw.update({k: run_seed for k in _RUN_SEED_OPTIONS if k in params and k not in kw})
    return cls(*args, **kw)


def open_dataset(
    spec: str | Path,
    split: str = "all",
    modalities: Sequence[str] | None = None,
    pair: bool | None = None,
    run_seed: int | None = None,
    **kw: Any,
) -> EODataset:
    """Open ``"simeo"`` (built-in synthetic data) or any dataset path (format detected).

    Args:
        spec: ``"simeo"`` or a path.
        split: ``"all"``, ``"train"``, ``"val"``, ``"test"`` (support depends on the format).
        modalities: modalities to load (default: all the format has).
        pair: BigEarthNet v1 only: pair an S2 (S1) root with its sibling S1 (S2) root. ``None`` pairs
            iff ``modalities`` asks for both.
        run_seed: the run's seed: the default of seed-like dataset options the format has (the
            GeoTIFF folder's ``split_seed``), so ``--seed`` also draws an automatic split.
        **kw: passed to the dataset class (e.g. ``size``, ``resampling``, ``include_snow_cloud``).
    """
    if run_seed is not None:
        kw["run_seed"] = run_seed
    mods = tuple(modalities) if modalities else None
    if str(spec) == "simeo":
        from eoreps.data.datasets.simeo import SimEODataset

        return _construct(SimEODataset, root=None, split=split, **({"modalities": mods} if mods else {}), **kw)
    path = Path(spec)
    fmt = detect_format(path)
    if fmt == "simeo":
        from eoreps.data.datasets.simeo import SimEODataset

        return _construct(SimEODataset, root=path, split=split, **({"modalities": mods} if mods else {}), **kw)
    if fmt.startswith("bigearthnet-v1"):
        from eoreps.data.datasets.bigearthnet import BigEarthNetV1

        if fmt == "bigearthnet-v1-pairs":
            ch = _v1_children(path)
            return _construct(BigEarthNetV1, ch["s2"][0], ch["s1"][0], split=split, modalities=mods, **kw)
        kind = fmt.rsplit("-", 1)[1]
        other = "s1" if kind == "s2" else "s2"
        want_pair = pair if pair is not None else bool(mods and other in mods)
        if not want_pair:
            roots = {f"{kind}_root": path}
        else:
            roots = {f"{kind}_root": path, f"{other}_root": _sibling(path, other)}
        return _construct(BigEarthNetV1, **roots, split=split, modalities=mods, **kw)
    if pair:
        raise ConfigError(f"pair=True applies to BigEarthNet v1 folders only; {path} is {fmt}")
    if fmt == "reben-v2":
        from eoreps.data.datasets.reben import ReBEN

        return _construct(ReBEN, path, split=split, modalities=mods, **kw)
    if fmt == "bigearthnet-npz":
        from eoreps.data.datasets.bigearthnet_npz import BigEarthNetNpz

        return _construct(BigEarthNetNpz, path, split=split, modalities=mods, **kw)
    from eoreps.data.datasets.geotiff_folder import GeoTiffFolder

    return _construct(GeoTiffFolder, path, split=split, modalities=mods, **kw)
