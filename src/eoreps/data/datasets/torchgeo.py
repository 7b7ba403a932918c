"""Use any torchgeo ``NonGeoDataset`` with dict samples (EuroSAT, SEN12MS, SSL4EO-S12, ...) in eoreps.

torchgeo samples hold one stacked ``image`` (C, H, W), a ``label`` (scalar class or multi-hot vector)
and/or a ``mask``. eoreps wants one tensor per modality in a fixed band order, so the wrapper:

* names the channels from ``band_names`` (default: the dataset's ``bands`` attribute), normalising
  ``B1`` -> ``B01`` and ``B8a`` -> ``B8A`` (SSL4EO-S12 spells them without the zero);
* splits them by modality: ``VV``/``VH``/``HH``/``HV`` -> ``s1``; Sentinel-2 bands -> ``s2`` in
  :data:`~eoreps.data.modalities.S2_L2A_BANDS` order, or ``s2_l1c`` (:data:`S2_L1C_BANDS` order) when
  B10 (cirrus, L1C only) is among them, unless ``drop_b10=True`` turns a 13-band L1C stack into the
  12-band ``s2`` (as EuroSAT / SEN12MS users often do to match L2A-pretrained models); anything else
  (or an unnamed stack) -> ``image``;
* maps ``label``: scalar -> ``label`` (int64), vector -> ``multilabel`` (float32); ``mask`` ->
  ``mask`` (H, W) int64 with values as the dataset gives them (SEN12MS: IGBP classes 1-17);
* passes other keys (``x``, ``y``, ``t``, ``wavelength`` ...) through and adds ``id``.

Values are left in the dataset's units (EuroSAT/SEN12MS S2: reflectance x 1e4; SEN12MS S1: dB).
Errors torchgeo raises while reading (missing or corrupt file) become a one-line :class:`DataError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from eoreps.data.datasets.base import EODataset, Sample
from eoreps.data.modalities import S2_L1C_BANDS, S2_L2A_BANDS
from eoreps.errors import ConfigError, DataError, unknown_name

_SAR = ("VV", "VH", "HH", "HV")


def normalise_band_name(name: str) -> str:
    """``"B1"`` -> ``"B01"``, ``"b8a"`` -> ``"B8A"``; other names unchanged."""
    m = re.fullmatch(r"[Bb](\d{1,2})([Aa]?)", name.strip())
    if not m:
        return name.strip()
    number, narrow = int(m.group(1)), bool(m.group(2))
    return f"B{number}A" if narrow else f"B{number:02d}"


def split_bands(names: Sequence[str], drop_b10: bool = False) -> dict[str, list[tuple[int, str]]]:
    """Group channel indices by eoreps modality: ``{modality: [(channel index, band name), ...]}``.

    Bands are ordered as in the registry modality (S2 L2A/L1C order, VV before VH).
    """
    norm = [normalise_band_name(n) for n in names]
    s2 = [(i, n) for i, n in enumerate(norm) if n in S2_L1C_BANDS]
    if drop_b10:
        s2 = [(i, n) for i, n in s2 if n != "B10"]
    s2_key = "s2_l1c" if any(n == "B10" for _, n in s2) else "s2"
    order = S2_L1C_BANDS if s2_key == "s2_l1c" else S2_L2A_BANDS
    groups: dict[str, list[tuple[int, str]]] = {}
    if s2:
        groups[s2_key] = sorted(s2, key=lambda t: order.index(t[1]))
    sar = [(i, n) for i, n in enumerate(norm) if n in _SAR]
    if sar:
        groups["s1"] = sorted(sar, key=lambda t: (_SAR.index(t[1])))
    other = [(i, n) for i, n in enumerate(norm) if n not in S2_L1C_BANDS and n not in _SAR]
    if other:
        groups["image"] = other
    return groups


class TorchGeoWrapper(EODataset):
    """An eoreps view of a torchgeo dataset with dict samples.

    Args:
        dataset: the torchgeo dataset (any map-style dataset returning dicts with ``image``).
        band_names: names of the ``image`` channels; default ``dataset.bands`` (if names).
        classes: class names; default ``dataset.classes`` if present.
        task: ``"single"``, ``"multi"``, ``"segmentation"`` or ``"none"``; default inferred from the
            first sample.
        drop_b10: drop the L1C cirrus band so 13-band Sentinel-2 stacks become the 12-band ``s2``.

    Samples: one ``(C, H, W)`` float32 tensor per modality (see the module doc), ``label`` /
    ``multilabel`` / ``mask`` as present, ``id``.
    """

    def __init__(
        self,
        dataset: Any,
        band_names: Sequence[str] | None = None,
        classes: Sequence[str] | None = None,
        task: str | None = None,
        drop_b10: bool = False,
    ) -> None:
        self.dataset = dataset
        self.name = type(dataset).__name__
        if band_names is None:
            bands = getattr(dataset, "bands", None)
            if isinstance(bands, (list, tuple)) and bands and all(isinstance(b, str) for b in bands):
                band_names = list(bands)
        first = self._raw(0) if len(dataset) else {}
        if "image" not in first:
            raise DataError(
                f"{self.name}: samples have no 'image' key (keys: {sorted(first)}); not a torchgeo image "
                "dataset"
            )
        channels = int(first["image"].shape[0])
        if band_names is None:
            self._groups = {"image": [(i, f"b{i + 1}") for i in range(channels)]}
        else:
            if len(band_names) != channels:
                hint = (
                    " (SSL4EO-S12 stacks seasons: use seasons=1)"
                    if channels % max(len(band_names), 1) == 0
                    else ""
                )
                raise ConfigError(
                    f"{self.name}: {len(band_names)} band names for {channels} image channels{hint}; "
                    "pass band_names= matching the image"
                )
            self._groups = split_bands(band_names, drop_b10=drop_b10)
        self.modalities = tuple(self._groups)
        self.band_names = {m: tuple(n for _, n in g) for m, g in self._groups.items()}
        self._index = {m: torch.tensor([i for i, _ in g], dtype=torch.long) for m, g in self._groups.items()}
        cls = classes if classes is not None else getattr(dataset, "classes", None)
        self.classes = tuple(str(c) for c in cls) if cls is not None else ()
        if task is None:
            lab = first.get("label")
            if lab is not None:
                task = "single" if torch.as_tensor(lab).ndim == 0 else "multi"
            elif "mask" in first:
                task = "segmentation"
            else:
                task = "none"
        if task not in ("single", "multi", "segmentation", "none"):
            raise unknown_name("task", task, ["single", "multi", "segmentation", "none"])
        self.task = task

    def _raw(self, index: int) -> dict[str, Any]:
        try:
            sample = self.dataset[index]
        except (OSError, RuntimeError, ValueError) as e:  # rasterio/GDAL/PIL failures surface as these
            msg = " ".join(str(e).split())[:200]
            raise DataError(f"{self.name}[{index}] ({self._id(index)}): cannot read the sample ({msg}); "
                            "check or re-download the file") from None
        if not isinstance(sample, dict):
            raise DataError(
                f"{self.name}: samples are {type(sample).__name__}, not dicts; wrap a torchgeo NonGeoDataset"
            )
        return sample

    def _id(self, index: int) -> str:
        ids = getattr(self.dataset, "ids", None)
        if isinstance(ids, (list, tuple)) and index < len(ids):
            return str(ids[index])
        samples = getattr(self.dataset, "samples", None)  # ImageFolder-based datasets (EuroSAT)
        if isinstance(samples, list) and index < len(samples):
            return str(samples[index][0]).replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
        return f"{self.name}_{index}"

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Sample:
        raw = self._raw(index)
        image = torch.as_tensor(raw["image"])
        out: Sample = {m: torch.index_select(image, 0, idx).float() for m, idx in self._index.items()}
        for k, v in raw.items():
            if k == "image":
                continue
            if k == "label":
                v = torch.as_tensor(v)
                if v.ndim == 0:
                    out["label"] = v.long()
                else:
                    out["multilabel"] = v.float()
            elif k == "mask":
                v = torch.as_tensor(v)
                out["mask"] = (v[0] if v.ndim == 3 and v.shape[0] == 1 else v).long()
            else:
                out[k] = v
        out["id"] = self._id(index)
        return out

    def label_matrix(self) -> torch.Tensor:
        """Labels without reading images where the dataset lists them (ImageFolder ``targets``)."""
        targets = getattr(self.dataset, "targets", None)
        if self.task == "single" and isinstance(targets, list) and len(targets) == len(self):
            return torch.tensor(targets, dtype=torch.int64)
        return super().label_matrix()


def open_torchgeo(name: str, drop_b10: bool = False, **kwargs: Any) -> TorchGeoWrapper:
    """Construct ``torchgeo.datasets.<name>(**kwargs)`` and wrap it; a missing dataset is a one-line error.

    Example: ``open_torchgeo("EuroSAT", root="data/eurosat", split="train")``.
    """
    import torchgeo.datasets as tgd
    from torchgeo.datasets.errors import DatasetNotFoundError

    cls = getattr(tgd, name, None)
    if not isinstance(cls, type):
        raise unknown_name(
            "torchgeo dataset", name, [n for n in dir(tgd) if n[:1].isupper() and "Error" not in n]
        )
    try:
        ds = cls(**kwargs)
    except DatasetNotFoundError as e:
        raise DataError(f"torchgeo {name}: {' '.join(str(e).split())}") from None
    except (AssertionError, ValueError, TypeError) as e:
        raise ConfigError(
            f"torchgeo {name}: invalid options {kwargs} ({' '.join(str(e).split()) or type(e).__name__})"
        ) from None
    return TorchGeoWrapper(ds, drop_b10=drop_b10)


__all__ = ["TorchGeoWrapper", "normalise_band_name", "open_torchgeo", "split_bands"]
