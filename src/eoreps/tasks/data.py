"""Batches for supervised training: an EODataset per split, normalised, as dicts.

:class:`EODataModule` (a LightningDataModule) wraps ``train`` / ``val`` datasets and any number of
named evaluation sets (``test``, ``shifted`` ...). Batches are the datasets' sample dicts collated
(string ``id`` -> list) and normalised by :class:`eoreps.data.stats.Normalizer` with statistics of the
training split (:func:`eoreps.data.stats.cached_stats`), so categorical land cover arrives one-hot and
no-data pixels as 0 (the band mean). Optional ``train_indices`` (e.g. from
:func:`eoreps.data.splits.label_fraction_indices`) restrict training to a label fraction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data._utils.collate import default_collate

from eoreps.data.stats import BandStats, Normalizer, cached_stats
from eoreps.digest import cache_dir
from eoreps.errors import DataError

_KEEP = ("label", "multilabel", "mask", "target", "target_std", "region", "id", "points", "image_labels")


def stats_cache_dir() -> Path:
    """``$EOREPS_CACHE/stats`` or ``~/.cache/eoreps/stats``."""
    return cache_dir("stats")


class _Collate:
    """Collate the needed keys of sample dicts, then normalise the batch (picklable for workers)."""

    def __init__(self, keys: Sequence[str], normalizer: Normalizer) -> None:
        self.keys = tuple(keys)
        self.normalizer = normalizer

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = default_collate([{k: s[k] for k in self.keys if k in s} for s in samples])
        return self.normalizer(batch)


class EODataModule(L.LightningDataModule):
    """Train / val / evaluation loaders over EODatasets with training-split normalisation.

    Args:
        train, val: datasets of sample dicts.
        evals: named evaluation datasets (``{"test": ds, "shifted": ds2}``).
        modalities: input modality keys to keep and normalise.
        batch_size: samples per batch.
        stats: band statistics; default: computed on ``train`` (cached on disk, at most
            ``stats_samples`` samples).
        train_indices: optional subset of ``train`` (label fraction).
        num_workers: loader processes (0 on small machines).
        seed: seed of the training shuffle.
    """

    def __init__(
        self,
        train: Dataset,
        val: Dataset,
        modalities: Sequence[str],
        evals: Mapping[str, Dataset] | None = None,
        batch_size: int = 64,
        stats: BandStats | None = None,
        train_indices: np.ndarray | None = None,
        num_workers: int = 0,
        seed: int = 0,
        stats_samples: int = 2000,
    ) -> None:
        super().__init__()
        if len(train) == 0 or len(val) == 0:
            raise DataError(
                f"empty split (train {len(train)}, val {len(val)} samples); check the dataset and the data "
                "path"
            )
        self.train_set = (
            Subset(train, [int(i) for i in train_indices]) if train_indices is not None else train
        )
        self.val_set = val
        self.evals = dict(evals or {})
        self.modalities = list(modalities)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.data_info: dict[
            str, Any
        ] = {}  # what the data was (eoreps.data.datasets.base.data_record), set by fit
        numeric = [m for m in self.modalities if not _categorical(m)]
        self.stats = stats if stats is not None else (
            cached_stats(train, stats_cache_dir(), modalities=numeric, max_samples=stats_samples, seed=0)
            if numeric else None)
        self.normalizer = Normalizer(self.stats, fallback=self.stats is None)
        self.collate = _Collate([*self.modalities, *_KEEP], self.normalizer)

    def _loader(self, ds: Dataset, shuffle: bool) -> DataLoader:
        g = torch.Generator().manual_seed(self.seed)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle, collate_fn=self.collate,
                          num_workers=self.num_workers, generator=g if shuffle else None,
                          drop_last=shuffle and len(ds) > self.batch_size,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        from eoreps.checkpoints import resumable_loader

        # the order is a function of (seed, epoch): a run resumed from a checkpoint sees what an
        # uninterrupted one sees (torch's RandomSampler restarts its generator on resume)
        return resumable_loader(self.train_set, self.batch_size, self.seed, self.trainer,
                                drop_last=len(self.train_set) > self.batch_size, collate_fn=self.collate,
                                num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")

    def eval_dataloader(self, name: str) -> DataLoader:
        """Loader of the evaluation set ``name`` (``"val"`` gives the validation set)."""
        if name == "val":
            return self.val_dataloader()
        if name not in self.evals:
            raise DataError(f"no evaluation set '{name}' (have: {', '.join(self.evals) or 'none'})")
        return self._loader(self.evals[name], shuffle=False)

    def example(self) -> dict[str, Any]:
        """One normalised training sample (no batch dimension), to size the model."""
        s = self.train_set[0]
        return self.normalizer({k: s[k] for k in (*self.modalities, *_KEEP) if k in s})


def _categorical(name: str) -> bool:
    from eoreps.data.modalities import MODALITIES

    return name in MODALITIES and MODALITIES[name].categorical


def require_target(dataset: Dataset, task: str, where: str) -> None:
    """One-line :class:`DataError` when the samples of ``dataset`` lack the target of ``task`` (e.g.
    ``--task regress`` on a folder of class labels), instead of a ``KeyError`` deep in training."""
    from eoreps.tasks.spec import TARGET_KEYS

    key = TARGET_KEYS.get(task)
    if key is None or len(dataset) == 0:  # type: ignore[arg-type]
        return
    sample = dataset[0]
    if key not in sample:
        keys = ", ".join(k for k in sample if not k.startswith("valid_"))
        raise DataError(f"{where}: samples have no '{key}', so task={task} is not available (keys: {keys}); "
                        "choose another task")


def regression_stats(
    dataset: Dataset, key: str = "target", indices: np.ndarray | None = None
) -> tuple[float, float]:
    """Mean and std of a scalar target over ``dataset`` (for standardisation), reading arrays if it can."""
    arrays = getattr(dataset, "arrays", None)
    rows = getattr(dataset, "indices", None)
    src = {"target": ("target", "power")}.get(key, (key,))
    values = None
    if arrays is not None and rows is not None:
        for name in src:
            try:
                values = np.asarray(arrays[name])[np.asarray(rows)]
                break
            except (KeyError, IndexError, TypeError):
                continue
    table = dataset.labels_table() if values is None and hasattr(dataset, "labels_table") else None
    if table is not None and key in table:  # a pack: labels.parquet, no image read
        values = table[key].to_numpy(dtype=np.float32)  # as the loaders store targets
    if values is None:
        values = np.array([float(dataset[i][key]) for i in range(len(dataset))])
    if indices is not None:
        values = values[np.asarray(indices)]
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise DataError(f"no finite '{key}' values in the training split; check the dataset")
    std = float(values.std())
    return float(values.mean()), std if std > 0 else 1.0
