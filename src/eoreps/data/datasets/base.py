"""The common face of every eoreps dataset.

Samples are dicts of tensors (torchgeo style). Keys:

==============  ==========================  ==============================================
key             shape / dtype               meaning
==============  ==========================  ==============================================
``<modality>``  (C, H, W) float32           image modality in physical units (see
                                            :mod:`eoreps.data.modalities`); NaN = no data
``<modality>``  (C,) float32                vector modality (``weather``, ``season``)
``label``       () int64                    single-label class index
``multilabel``  (K,) float32                multi-hot labels
``mask``        (H, W) int64                segmentation classes, ``IGNORE_INDEX`` = unknown
``target``      () float32                  scalar regression target
``id``          str                         sample identifier
==============  ==========================  ==============================================

Datasets may add more keys (SimEO adds ``target_std``, ``region``, ``doy`` ...). Normalisation is not
applied by datasets: use :mod:`eoreps.data.stats` so statistics are computed once and cached.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.data import Dataset

IGNORE_INDEX = -100
"""Mask value for pixels without a label (same default as ``torch.nn.CrossEntropyLoss``)."""

Sample = dict[str, Any]


class EODataset(Dataset):
    """Base class: a map-style dataset of dict samples with described modalities and classes.

    Subclasses set ``modalities`` (names, keys of image/vector tensors), ``band_names``
    (modality -> band names), ``classes`` (class names) and ``task`` (``"single"``, ``"multi"`` or
    ``"none"``), and implement ``__len__`` and ``__getitem__``.
    """

    modalities: tuple[str, ...] = ()
    band_names: dict[str, tuple[str, ...]] = {}
    classes: tuple[str, ...] = ()
    task: str = "none"
    synthetic: bool = False

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int) -> Sample:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        """Number of classes (0 when unlabelled)."""
        return len(self.classes)

    def label_matrix(self) -> torch.Tensor:
        """Labels of all samples without loading images where possible.

        Returns ``(N,)`` int64 for single-label datasets, ``(N, K)`` float32 for multi-label.
        The default loads every sample; subclasses override with a cheap version.
        """
        key = "label" if self.task == "single" else "multilabel"
        return torch.stack([torch.as_tensor(self[i][key]) for i in range(len(self))])

    def describe(self) -> dict[str, Any]:
        """What a run used of this dataset (recorded in results.json, pretrain.json, ...): its classes."""
        return {"dataset": type(self).__name__, "classes": list(self.classes)}

    def plot(self, sample: Sample, suptitle: str | None = None) -> Any:
        """A matplotlib figure of one sample: an RGB-like view of each image modality and the mask."""
        from eoreps.report.plots import plot_sample

        return plot_sample(sample, self.band_names, self.classes, suptitle=suptitle, synthetic=self.synthetic)


def task_classes(ds: Any, task: str) -> tuple[str, ...]:
    """Class names of ``task`` on ``ds``: the mask classes for ``segment`` when the dataset has its own
    (:class:`~eoreps.data.datasets.geotiff_folder.GeoTiffFolder`), else ``ds.classes``."""
    if task == "segment" and getattr(ds, "mask_classes", ()):
        return tuple(ds.mask_classes)
    return tuple(getattr(ds, "classes", ()) or ())


def describe_dataset(ds: Any) -> dict[str, Any]:
    """:meth:`EODataset.describe` of ``ds``, or its classes for datasets that are not an ``EODataset``."""
    if hasattr(ds, "describe"):
        return ds.describe()
    return {"dataset": type(ds).__name__, "classes": list(getattr(ds, "classes", ()) or ())}


def data_record(datasets: Mapping[str, Any]) -> dict[str, Any]:
    """What a run read, for its results file: :func:`describe_dataset` of the first of ``datasets``
    (split name -> dataset; classes are the same for every split) plus the samples per split and, where
    the format can skip samples that are entirely no-data, how many each split left out."""
    first = next(iter(datasets.values()))
    rec = describe_dataset(first)
    rec["samples"] = {s: len(ds) for s, ds in datasets.items()}
    if hasattr(first, "num_skipped_nodata"):
        rec["skipped_nodata"] = {s: int(ds.num_skipped_nodata) for s, ds in datasets.items()}
    return rec
