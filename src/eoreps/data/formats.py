"""Recognise a dataset on disk and open it as an :class:`~eoreps.data.datasets.base.EODataset`.

Formats (``detect_format`` returns the name):

=========================  ==================================================================
``packed``                 a folder written by ``eoreps data pack`` (``eoreps_pack.json``, LitData chunks)
``simeo``                  a folder written by ``eoreps data generate`` (synthetic)
``bigearthnet-v1-s2``      BigEarthNet v1 S2 root: ``<patch>/<patch>_B02.tif ...`` + labels JSON
``bigearthnet-v1-s1``      BigEarthNet v1 S1 root: ``<patch>/<patch>_VV.tif, _VH.tif`` + JSON
``bigearthnet-v1-pairs``   a folder holding one v1 S2 root and one v1 S1 root (paired samples)
``reben-v2``               ``metadata.parquet`` + LMDB (BigEarthNet v2 / reBEN)
``bigearthnet-npz``        an ``.npz`` with ``s2_10m``, ``s2_20m``, ``s2_60m``, ``s1_vv_vh_db``, ...
``geotiff-folder``         ``labels.csv`` + ``<modality>/<id>.tif`` (your own data)
=========================  ==================================================================

Each format is registered with :func:`register_format` on its opener, with a ``detect(path) -> bool``
and a ``priority`` (lower is tried first); :func:`detect_format` asks them in that order::

    @register_format("my-format", detect=lambda p: (p / "my.json").is_file(), priority=45)
    def open_my_format(path: Path, split: str, modalities: tuple[str, ...] | None, **kw) -> EODataset: ...

Pairing BigEarthNet v1: a v1 S2 (or S1) root opens alone by default, so ``eoreps data inspect``
reports exactly that folder. Pairing with the sibling root (the one folder beside it of the other
kind, e.g. ``BigEarthNet-S1-Example`` next to ``BigEarthNet-S2-Example``) happens when asked:
``pair=True``, or ``modalities`` naming both ``s2`` and ``s1``. Opening the parent folder
(``bigearthnet-v1-pairs``) always pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eoreps.data.datasets.base import EODataset
from eoreps.errors import ConfigError, DataError
from eoreps.registry import Registry

Opener = Callable[..., EODataset]


@dataclass(frozen=True)
class DataFormat:
    """A registered dataset format.

    Attributes:
        name: what :func:`detect_format` returns.
        detect: ``detect(path) -> bool`` for an existing path (may raise :class:`DataError` for a
            recognised but unusable dataset).
        open: ``open(path, split, modalities, **kw) -> EODataset`` (``modalities``: a tuple or ``None``).
        priority: detection order, lower first.
        pairable: takes ``pair=`` (BigEarthNet v1 S2/S1 roots).
        seeded_split: its automatic split is drawn from the run's seed (``split_seed``, a GeoTIFF folder
            without a split column): a cached pack (:mod:`eoreps.data.pack_cache`) is keyed by the seed,
            and a pretrained zoo splits its pretraining data with the build's seed.
        paired_modalities: which samples exist depends on the modalities read (BigEarthNet v1 pairing; a
            GeoTIFF folder's no-data check of the modalities read): a cached pack is keyed by them.
    """

    name: str
    detect: Callable[[Path], bool]
    open: Opener
    priority: int = 50
    pairable: bool = False
    seeded_split: bool = False
    paired_modalities: bool = False


FORMAT_REGISTRY: Registry[DataFormat] = Registry("dataset format")


def register_format(name: str, *, detect: Callable[[Path], bool], priority: int = 50,
                    pairable: bool = False, seeded_split: bool = False,
                    paired_modalities: bool = False) -> Callable[[Opener], Opener]:
    """Decorator registering ``open(path, split, modalities, **kw)`` as format ``name`` (see the module;
    the keyword arguments are the :class:`DataFormat` attributes)."""

    def deco(fn: Opener) -> Opener:
        FORMAT_REGISTRY.add(name, DataFormat(name, detect, fn, priority, pairable, seeded_split,
                                             paired_modalities))
        return fn

    return deco


def formats() -> list[DataFormat]:
    """Every registered format in detection order."""
    return sorted(FORMAT_REGISTRY.entries().values(), key=lambda f: f.priority)

_EXPECTED = (
    "a SimEO folder (eoreps data generate), a BigEarthNet v1 S2/S1 root (<patch>/<patch>_B02.tif or "
    "_VV.tif), a folder with both, a reBEN folder (metadata.parquet + LMDB), a BigEarthNet .npz, "
    "or a GeoTIFF folder (labels.csv + <modality>/<id>.tif)"
)
_PROBE_DIRS = 8  # sub-folders looked at to recognise a v1 root (roots may hold 590k patches)


def _is_simeo(path: Path) -> bool:
    from eoreps.data.simeo import is_simeo_folder

    return path.is_dir() and bool(is_simeo_folder(path))


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


def _is_v1_pairs(path: Path) -> bool:
    """A folder holding one BigEarthNet v1 S2 root and one S1 root (several: one-line error)."""
    if not path.is_dir():
        return False
    children = _v1_children(path)
    if not (children["s2"] and children["s1"]):
        return False
    if len(children["s2"]) > 1 or len(children["s1"]) > 1:
        names = ", ".join(p.name for p in children["s2"] + children["s1"])
        raise DataError(f"{path}: several BigEarthNet v1 roots ({names}); pass one S2 or S1 root")
    return True


def _is_ben_npz(path: Path) -> bool:
    from eoreps.data.datasets.bigearthnet_npz import is_ben_npz

    return path.is_file() and bool(is_ben_npz(path))


def _is_folder(check: Callable[[Path], Any]) -> Callable[[Path], bool]:
    """``check`` applied to folders only (a file is never a folder format)."""
    return lambda path: path.is_dir() and bool(check(path))


def detect_format(path: str | Path) -> str:
    """Name of the dataset format at ``path`` (the registered formats, asked in priority order).

    Raises:
        DataError: the path does not exist or matches no known format (message lists what was expected).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; expected {_EXPECTED}")
    try:
        for fmt in formats():
            if fmt.detect(path):
                return fmt.name
    except PermissionError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror}); check its permissions") from None
    if path.is_file():
        if path.suffix == ".npz":
            raise DataError(f"{path}: {_npz_problem(path)}")
        raise DataError(f"{path}: unrecognised dataset file; expected {_EXPECTED}")
    from eoreps.data.datasets.bigearthnet import is_patch_folder

    for kind in ("s2", "s1"):
        if is_patch_folder(path, kind):
            raise DataError(
                f"{path}: this is a single BigEarthNet patch folder; pass the folder that holds the patches"
            )
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
        raise DataError(
            f"{root}: no BigEarthNet v1 {other} folder beside it to pair with; put it in {root.parent}"
        )
    raise DataError(
        f"{root}: several {other} folders beside it ({', '.join(p.name for p in found)}); open the pair "
        "explicitly"
    )


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
    source_format: str | None = None,
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
        source_format: the path's format name when the caller detected it already (a pack opens every
            split of its source); ``None``: :func:`detect_format`.
        **kw: passed to the dataset class (e.g. ``size``, ``resampling``, ``include_snow_cloud``).
    """
    if run_seed is not None:
        kw["run_seed"] = run_seed
    mods = tuple(modalities) if modalities else None
    if str(spec) == "simeo":
        return _open_simeo(None, split, mods, **kw)
    path = Path(spec)
    fmt = FORMAT_REGISTRY.get(source_format or detect_format(path))
    if fmt.pairable:
        return fmt.open(path, split, mods, pair=pair, **kw)
    if pair:
        raise ConfigError(f"pair=True applies to BigEarthNet v1 folders only; {path} is {fmt.name}")
    return fmt.open(path, split, mods, **kw)


# ------------------------------------------------------------------------------------- the built-ins
def _is_packed(path: Path) -> bool:
    return (path / "eoreps_pack.json").is_file()  # = eoreps.data.datasets.packed.MANIFEST (no litdata import)


@register_format("packed", detect=_is_folder(_is_packed), priority=5)
def _open_packed(path: Path, split: str, mods: tuple[str, ...] | None, **kw: Any) -> EODataset:
    from eoreps.data.datasets.packed import PackedDataset

    return _construct(PackedDataset, path, split=split, modalities=mods, **kw)


@register_format("simeo", detect=_is_simeo, priority=10)
def _open_simeo(path: Path | None, split: str, mods: tuple[str, ...] | None, **kw: Any) -> EODataset:
    from eoreps.data.datasets.simeo import SimEODataset

    return _construct(SimEODataset, root=path, split=split, **({"modalities": mods} if mods else {}), **kw)


def _is_reben(path: Path) -> bool:
    from eoreps.data.datasets.reben import is_reben_folder

    return bool(is_reben_folder(path))


@register_format("reben-v2", detect=_is_folder(_is_reben), priority=20)
def _open_reben(path: Path, split: str, mods: tuple[str, ...] | None, **kw: Any) -> EODataset:
    from eoreps.data.datasets.reben import ReBEN

    return _construct(ReBEN, path, split=split, modalities=mods, **kw)


def _is_geotiff(path: Path) -> bool:
    from eoreps.data.datasets.geotiff_folder import is_geotiff_folder

    return bool(is_geotiff_folder(path))


@register_format("geotiff-folder", detect=_is_folder(_is_geotiff), priority=30, seeded_split=True,
                 paired_modalities=True)
def _open_geotiff(path: Path, split: str, mods: tuple[str, ...] | None, **kw: Any) -> EODataset:
    from eoreps.data.datasets.geotiff_folder import GeoTiffFolder

    return _construct(GeoTiffFolder, path, split=split, modalities=mods, **kw)


def _open_v1_root(kind: str) -> Opener:
    """Opener of a BigEarthNet v1 ``kind`` root, paired with its sibling root when asked."""

    def open_root(path: Path, split: str, mods: tuple[str, ...] | None, pair: bool | None = None,
                  **kw: Any) -> EODataset:
        from eoreps.data.datasets.bigearthnet import BigEarthNetV1

        other = "s1" if kind == "s2" else "s2"
        roots = {f"{kind}_root": path}
        if pair if pair is not None else bool(mods and other in mods):
            roots[f"{other}_root"] = _sibling(path, other)
        return _construct(BigEarthNetV1, **roots, split=split, modalities=mods, **kw)

    return open_root


for _kind in ("s2", "s1"):
    register_format(f"bigearthnet-v1-{_kind}", detect=_is_folder(lambda p, k=_kind: _v1_kind(p) == k),
                    priority=40, pairable=True, paired_modalities=True)(_open_v1_root(_kind))


@register_format("bigearthnet-v1-pairs", detect=_is_v1_pairs, priority=50, pairable=True,
                 paired_modalities=True)
def _open_v1_pairs(path: Path, split: str, mods: tuple[str, ...] | None, pair: bool | None = None,
                   **kw: Any) -> EODataset:
    from eoreps.data.datasets.bigearthnet import BigEarthNetV1

    ch = _v1_children(path)
    return _construct(BigEarthNetV1, ch["s2"][0], ch["s1"][0], split=split, modalities=mods, **kw)


@register_format("bigearthnet-npz", detect=_is_ben_npz, priority=60)
def _open_npz(path: Path, split: str, mods: tuple[str, ...] | None, **kw: Any) -> EODataset:
    from eoreps.data.datasets.bigearthnet_npz import BigEarthNetNpz

    return _construct(BigEarthNetNpz, path, split=split, modalities=mods, **kw)


FORMATS = tuple(f.name for f in formats())
"""The built-in format names in detection order."""
