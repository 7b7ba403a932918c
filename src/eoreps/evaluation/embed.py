"""``eoreps embed``: a dataset through a pretrained run's exported encoders, to an embedding folder.

``run_embed(EmbedConfig(backbone="runs/mm", data="simeo", out="emb"))`` loads the run with
:func:`eoreps.ssl.export.load_encoders` (normalising inputs as each card says, the same normaliser as every
other reader of exported encoders), iterates each split with a ``DataLoader`` (memory ~ one batch: arrays
are written into ``.npy`` files opened as memory maps) and writes the folder read by ``eoreps retrieve``
(:class:`eoreps.evaluation.embedding_store.EmbeddingFolder`)::

    emb/embed.json                 format, run, run_id, method, modalities, spaces {space: {key: D}}, data,
                                   synthetic, splits {split: n}, classes, created, eoreps_version
    emb/meta.parquet               row, id, split and, where the data has them, label, label_name, labels
                                   (';'-joined multi-label names), season, doy, region, lat, lon, date
    emb/<space>_<key>.npy          float32 (N, D): backbone features / projection ("joint") embeddings
    emb/thumbs/<modality>.npy      uint8 (N, 3, 32, 32) RGB thumbnails (S2 B04,B03,B02; S1 VV, VH, VV-VH dB)

``season`` comes from the sample's day of year (SimEO's ``doy``) or from the acquisition date in a Sentinel
product name (``..._20170613T101031_...``, BigEarthNet ids); meteorological seasons of the northern
hemisphere. Inputs go to the encoders at the data's own size (a CNN takes any size; a ViT needs the size
it was pretrained at, ``input.image_size`` of its card).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eoreps.cli_config import opt
from eoreps.errors import ConfigError, DataError, EoRepsError

if TYPE_CHECKING:  # torch is imported where it is used: `eoreps --help` builds this command without it
    import torch

SPLITS = ("train", "val", "test")
SPACE_CHOICES = ("all", "backbone", "joint")
THUMB_SIZE = 32
THUMB_LIMIT = 20_000  # thumbnails "auto": written for at most this many samples
_THUMB_CHOICES = ("auto", "on", "off")
_DATE = re.compile(r"(?<!\d)((?:19|20)\d{2})(\d{2})(\d{2})T\d{6}")
_SEASONS = (
    "winter",
    "winter",
    "spring",
    "spring",
    "spring",
    "summer",
    "summer",
    "summer",
    "autumn",
    "autumn",
    "autumn",
    "winter",
)  # by month, northern hemisphere (meteorological)


@dataclass
class EmbedConfig:
    """Options of ``eoreps embed`` (YAML keys = these names).

    Attributes:
        backbone: run folder of ``eoreps pretrain`` (``encoders.json``, or ``backbone.safetensors``).
        data: ``"simeo"`` or a dataset path.
        out: output folder.
        splits: splits to embed (``None``: every one of train/val/test the data has).
        modalities: encoder keys to embed (``None``: every encoder of the run).
        space: ``backbone``, ``joint`` (projection heads; an error if the run has none) or ``all`` (backbone,
            and joint where the run has it).
        batch_size: samples per forward pass.
        max_samples: per split, a random subset of this size (seeded by ``seed``); ``None``: all.
        thumbnails: ``auto`` (when the folder has at most 20,000 samples), ``on`` or ``off``.
        num_workers: DataLoader worker processes.
        seed: seed of ``max_samples`` subsets (and of an automatic split of the data).
        quick: a smoke run (``apply_quick``).
        data_options: dataset loader options (:func:`eoreps.data.formats.open_dataset`).
    """

    backbone: str = opt("", help="Run folder of `eoreps pretrain` whose exported encoders embed the data.")
    data: str = "simeo"
    out: str = "runs/embed"
    splits: list[str] | None = opt(None, none="", help="Comma-separated splits (default: every one of "
                                   "train,val,test the data has).")
    modalities: list[str] | None = opt(
        None, none="", help="Encoders to embed, e.g. s1 (default: all of the run)."
    )
    space: str = opt(
        "all", help="backbone | joint (projection heads) | all (backbone, and joint where present)."
    )
    batch_size: int = opt(256, help="Samples per forward pass.")
    max_samples: int | None = opt(
        None, none=0, help="Per split, a seeded random subset of this size (0 = all)."
    )
    thumbnails: str = opt(
        "auto", help="auto (for <= 20000 samples) | on | off: 32 px RGB thumbnails for figures."
    )
    plot: bool = opt(False, help="Also draw map_<space>_<modality>.png: a 2-D map (UMAP if installed, else "
                                 "t-SNE) of each modality's embeddings coloured by label, season, latitude.")
    num_workers: int = opt(0, help="DataLoader worker processes.")
    seed: int = 0
    quick: bool = False
    data_options: dict[str, Any] = field(default_factory=dict)

    def apply_quick(self, keep: Collection[str] = ()) -> list[str]:
        """``--quick``: at most 64 samples per split in batches of 32, except the options in ``keep``."""
        from eoreps.quick import shrink

        self.quick = True
        return shrink(
            self, {"max_samples": lambda v: min(v or 64, 64), "batch_size": lambda v: min(v, 32)}, keep
        )

    def check(self) -> None:
        """One-line errors for option values (naming the field; the command names the flag)."""
        if not self.backbone:
            raise ConfigError("backbone= is required: pass the --out folder of `eoreps pretrain`")
        if self.space not in SPACE_CHOICES:
            raise ConfigError(f"space={self.space} unknown; choose one of {', '.join(SPACE_CHOICES)}")
        if self.thumbnails not in _THUMB_CHOICES:
            raise ConfigError(
                f"thumbnails={self.thumbnails} unknown; choose one of {', '.join(_THUMB_CHOICES)}"
            )
        for name in ("batch_size", "max_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name}={value} must be >= 1")
        if self.num_workers < 0:
            raise ConfigError(f"num_workers={self.num_workers} must be >= 0")


@dataclass
class EmbedResult:
    """What ``run_embed`` wrote: the folder, arrays (``"joint_s1"`` -> (N, D)), samples per split, timing."""

    out: Path
    arrays: dict[str, tuple[int, int]]
    splits: dict[str, int]
    wall_time_s: float

    @property
    def samples_per_s(self) -> float:
        """Embedding throughput (data loading included)."""
        return sum(self.splits.values()) / max(self.wall_time_s, 1e-9)


# ------------------------------------------------------------------------------------ sample metadata
def season_of_month(month: int) -> str:
    """Meteorological season (northern hemisphere) of a month 1..12."""
    return _SEASONS[(int(month) - 1) % 12]


def date_from_id(sample_id: str) -> str | None:
    """``YYYY-MM-DD`` of a Sentinel product name in ``sample_id`` (``S2A_MSIL2A_20170613T101031_...``), or
    None."""
    m = _DATE.search(sample_id)
    return f"{m.group(1)}-{m.group(2)}-{m.group(3)}" if m and 1 <= int(m.group(2)) <= 12 else None


def _scalar(v: Any) -> Any:
    """A one-element tensor/array/number as a Python number; ``None`` for anything else."""
    if isinstance(v, str):
        return None
    a = np.asarray(v)
    return a.item() if a.size == 1 else None


def sample_meta(sample: dict[str, Any]) -> dict[str, Any]:
    """The metadata of one sample dict: ``id``, ``label``, ``multilabel`` positions, ``doy``/``season``,
    ``region``, ``lat``, ``lon``, ``date`` (each only where the sample has it)."""
    row: dict[str, Any] = {"id": str(sample.get("id", ""))}
    if "label" in sample:
        row["label"] = int(_scalar(sample["label"]))
    if "multilabel" in sample:
        row["multilabel"] = np.flatnonzero(np.asarray(sample["multilabel"]) > 0.5).tolist()
    for key in ("region", "lat", "lon"):
        if key in sample and _scalar(sample[key]) is not None:
            row[key] = _scalar(sample[key])
    date = str(sample["date"]) if "date" in sample else date_from_id(row["id"])
    if date:
        row["date"] = date
    if "doy" in sample and _scalar(sample["doy"]) is not None:
        row["doy"] = int(_scalar(sample["doy"]))
        row["season"] = season_of_month(1 + min(11, (row["doy"] - 1) * 12 // 366))
    elif date:
        row["season"] = season_of_month(int(date[5:7]))
    return row


class _Collate:
    """Stack the modalities of a list of samples; keep each sample's metadata (picklable for workers)."""

    def __init__(self, modalities: Sequence[str]) -> None:
        self.modalities = list(modalities)

    def __call__(self, samples: list[dict[str, Any]]) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
        import torch

        batch = {m: torch.stack([torch.as_tensor(s[m], dtype=torch.float32) for s in samples])
                 for m in self.modalities}
        return batch, [sample_meta(s) for s in samples]


# ------------------------------------------------------------------------------------------ thumbnails
def _rgb_bands(modality: str, bands: Sequence[str], channels: int) -> list[int] | None:
    """Band positions of the thumbnail's R, G, B (``None`` for S1: VV, VH, VV - VH)."""
    names = [str(b).upper() for b in bands]
    if modality == "s1" and {"VV", "VH"} <= set(names):
        return None
    if {"B04", "B03", "B02"} <= set(names):
        return [names.index(b) for b in ("B04", "B03", "B02")]
    return [min(i, channels - 1) for i in range(3)]


def thumbnails(x: torch.Tensor, modality: str, bands: Sequence[str]) -> np.ndarray:
    """``(B, 3, 32, 32)`` uint8 RGB of raw images ``x`` ``(B, C, H, W)``: S2 true colour (B04, B03, B02), S1
    false colour (VV, VH, VV - VH in dB, each channel stretched alone), others their first three bands; each
    image stretched between its own 2nd and 98th percentile (no data -> black)."""
    import torch

    x = x.float()
    pos = _rgb_bands(modality, bands, x.shape[1])
    if pos is None:
        names = [str(b).upper() for b in bands]
        vv, vh = x[:, names.index("VV")], x[:, names.index("VH")]
        rgb = torch.stack([vv, vh, vv - vh], dim=1)
    else:
        rgb = x[:, pos]
    valid = torch.isfinite(rgb)
    fill = torch.nanmean(torch.where(valid, rgb, torch.nan), dim=(2, 3), keepdim=True).nan_to_num(0.0)
    small = torch.nn.functional.interpolate(torch.where(valid, rgb, fill), size=(THUMB_SIZE, THUMB_SIZE),
                                            mode="area")
    mask = torch.nn.functional.interpolate(valid.float(), size=(THUMB_SIZE, THUMB_SIZE), mode="area") > 0.5
    # true colour: one stretch for the three bands (keeps the colour balance); false colour: one per channel
    flat = torch.where(mask, small, torch.nan).flatten(2 if pos is None else 1)
    shape = (-1, 3 if pos is None else 1, 1, 1)
    lo = torch.nanquantile(flat, 0.02, dim=-1).nan_to_num(0.0).reshape(shape)
    hi = torch.nanquantile(flat, 0.98, dim=-1).nan_to_num(1.0).reshape(shape)
    out = ((small - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1) * 255
    return torch.where(mask, out, torch.zeros_like(out)).round().to(torch.uint8).numpy()


# ------------------------------------------------------------------------------------------------ data
def open_splits(cfg: EmbedConfig, modalities: Sequence[str]) -> dict[str, Any]:
    """``{split: dataset}`` of the requested splits (a one-line error for an empty or missing one); by default
    every one of train/val/test that opens and is non-empty (the first error if none does)."""
    from eoreps.data.formats import open_dataset

    wanted = list(cfg.splits or SPLITS)
    out: dict[str, Any] = {}
    first_error: EoRepsError | None = None
    for split in wanted:
        try:
            ds = open_dataset(cfg.data, split=split, modalities=list(modalities), run_seed=cfg.seed,
                              **dict(cfg.data_options))
        except EoRepsError as e:
            if cfg.splits:
                raise
            first_error = first_error or e
            continue
        if len(ds) == 0:
            if cfg.splits:
                raise DataError(
                    f"{cfg.data}: split '{split}' is empty; pass --splits with splits that have samples"
                )
            continue
        out[split] = ds
    if not out:
        if first_error is not None:
            raise first_error
        raise DataError(
            f"{cfg.data}: splits {', '.join(wanted)} are empty; pass --splits with splits that have samples"
        )
    return out


def _subset(ds: Any, n: int | None, seed: int) -> Any:
    import torch

    if n is None or n >= len(ds):
        return ds
    idx = np.sort(np.random.default_rng(seed).choice(len(ds), size=n, replace=False))
    return torch.utils.data.Subset(ds, idx.tolist())


def _check_modalities(data: str, ds: Any, modalities: Sequence[str]) -> None:
    have = tuple(getattr(ds, "modalities", ()) or ())
    missing = [m for m in modalities if have and m not in have]
    if missing:
        raise DataError(
            f"{data}: the data has no modality '{missing[0]}' (it has {', '.join(have)}), which the run "
            "reads; embed data with the run's modalities"
        )


def _targets(enc: Any, cfg: EmbedConfig) -> dict[str, list[str]]:
    """Encoder key -> the spaces to write."""
    keys = [enc.key(m) for m in cfg.modalities] if cfg.modalities else list(enc)
    wanted = ("backbone", "joint") if cfg.space == "all" else (cfg.space,)
    out = {k: [s for s in wanted if cfg.space != "all" or s in enc.spaces(k)] for k in keys}
    for k, spaces in out.items():
        for s in spaces:
            enc.dim(k, s)  # the one-line error when the run has no such space
    return out


def _run_id(enc: Any) -> str:
    from eoreps.digest import digest
    from eoreps.ssl.export import INDEX_FILE

    index = enc.run / INDEX_FILE
    content = index.read_text() if index.is_file() else None
    return digest(
        {"index": content, "cards": {k: enc[k].card.to_dict() for k in enc}, "heads": enc.head_cards}
    )


# ------------------------------------------------------------------------------------------------ run
def run_embed(cfg: EmbedConfig) -> EmbedResult:
    """Embed ``cfg.data`` with the encoders of ``cfg.backbone`` into ``cfg.out`` (see the module
    docstring)."""
    import torch

    from eoreps import __version__
    from eoreps.io import atomic_path, check_out_dir, write_json
    from eoreps.progress import progress
    from eoreps.smoke import smoke_fields
    from eoreps.ssl.export import load_encoders

    cfg.check()
    out = check_out_dir(cfg.out)
    t0 = time.perf_counter()
    enc = load_encoders(cfg.backbone)
    targets = _targets(enc, cfg)
    raw_mods = list(dict.fromkeys(m for k in targets for m in enc[k].card.input_stack))
    datasets = open_splits(cfg, raw_mods)
    for ds in datasets.values():
        _check_modalities(cfg.data, ds, raw_mods)
    first = next(iter(datasets.values()))
    classes = [str(c) for c in getattr(first, "classes", ()) or ()]
    bands = {
        m: list((getattr(first, "band_names", {}) or {}).get(m) or (enc[k].card.band_names or {}).get(m, ()))
        for k in targets
        for m in enc[k].card.input_stack
    }
    subsets = {s: _subset(ds, cfg.max_samples, cfg.seed) for s, ds in datasets.items()}
    n = sum(len(d) for d in subsets.values())
    thumbs = cfg.thumbnails == "on" or (cfg.thumbnails == "auto" and n <= THUMB_LIMIT)
    shapes = {f"{s}_{k}": (n, enc.dim(k, s)) for k, spaces in targets.items() for s in spaces}
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        files = {name: stack.enter_context(atomic_path(out / f"{name}.npy")) for name in shapes}
        arrays = {name: np.lib.format.open_memmap(files[name], mode="w+", dtype=np.float32, shape=shape)
                  for name, shape in shapes.items()}
        if thumbs:
            tfiles = {m: stack.enter_context(atomic_path(out / "thumbs" / f"{m}.npy")) for m in raw_mods}
            arrays.update(
                {
                    f"thumbs/{m}": np.lib.format.open_memmap(
                        tfiles[m], mode="w+", dtype=np.uint8, shape=(n, 3, THUMB_SIZE, THUMB_SIZE)
                    )
                    for m in raw_mods
                }
            )
        row = 0
        for split, ds in subsets.items():
            loader = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, shuffle=False,
                                                 num_workers=cfg.num_workers, collate_fn=_Collate(raw_mods))
            for batch, metas in progress(loader, desc=f"embedding {split}", total=len(loader), unit="batch"):
                b = len(metas)
                for key, spaces in targets.items():
                    for space, z in enc.embed_spaces(batch, key, spaces).items():
                        arrays[f"{space}_{key}"][row:row + b] = z.numpy()
                if thumbs:
                    for m in raw_mods:
                        arrays[f"thumbs/{m}"][row:row + b] = thumbnails(batch[m], m, bands.get(m, ()))
                rows.extend({"row": row + i, **meta, "split": split} for i, meta in enumerate(metas))
                row += b
        for name in list(arrays):
            arrays.pop(name).flush()
        meta = _meta_frame(rows, classes)
        with atomic_path(out / "meta.parquet") as tmp:
            meta.to_parquet(tmp, index=False)
    wall = time.perf_counter() - t0
    spaces: dict[str, dict[str, int]] = {}
    for k, ss in targets.items():
        for s in ss:
            spaces.setdefault(s, {})[k] = enc.dim(k, s)
    from datetime import datetime, timezone

    split_sizes = {s: len(d) for s, d in subsets.items()}
    write_json(
        out / "embed.json",
        {
            "format": "eoreps-embeddings",
            "version": 1,
            "run": str(enc.run.resolve()),
            "run_id": _run_id(enc),
            "method": enc.method,
            "modalities": list(targets),
            "spaces": spaces,
            "data": str(cfg.data),
            "synthetic": any(bool(getattr(d, "synthetic", False)) for d in datasets.values()),
            "splits": split_sizes,
            "classes": classes,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "eoreps_version": __version__,
            "thumbnails": raw_mods if thumbs else [],
            "wall_time_s": round(wall, 3),
            "samples_per_s": round(n / max(wall, 1e-9), 2),
            **smoke_fields(cfg.quick, f"{n} samples"),
        },
    )
    return EmbedResult(out, shapes, split_sizes, wall)


def _meta_frame(rows: list[dict[str, Any]], classes: Sequence[str]) -> Any:
    """``meta.parquet``'s table: label names from ``classes``, multi-labels joined with ';'."""
    import pandas as pd

    meta = pd.DataFrame(rows)
    first = ["row", "id", "split"]
    if "label" in meta.columns and classes:
        meta["label_name"] = [classes[i] if 0 <= i < len(classes) else "" for i in meta["label"]]
    if "multilabel" in meta.columns:
        meta["labels"] = [
            ";".join(classes[i] for i in pos if i < len(classes)) if isinstance(pos, list) else ""
            for pos in meta.pop("multilabel")
        ]
    return meta[first + [c for c in meta.columns if c not in first]]
