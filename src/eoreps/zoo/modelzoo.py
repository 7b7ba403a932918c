"""``ModelZoo``: a zoo directory as a torch ``Dataset`` of (weights, properties).

Example::

    zoo = ModelZoo("zoo_dir", epochs=[25])            # last checkpoint of every member
    w, props = zoo[0]                                   # w: (D,) float32, props: dict
    net = zoo.build_model(0)                            # ready nn.Module (eval mode)
    W = zoo.weights_matrix()                            # (len(zoo), D)
    zoo.properties                                      # pandas DataFrame, one row per item

A weight vector lists the parameters in ``zoo.param_order`` (= the architecture's ``state_dict`` key
order, weight before bias, layer by layer; see :mod:`eoreps.zoo.architectures`). Every shard is
verified against its checksum the first time it is read; a corrupt one raises a one-line
:class:`eoreps.errors.DataError` naming it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import Dataset

from eoreps.errors import DataError
from eoreps.zoo.architectures import ZooNet, load_flat, make_arch
from eoreps.zoo.datasets import ZooData, load_dataset
from eoreps.zoo.store import ZooStore, param_order_of

METRIC_COLUMNS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "ggap")
"""The metrics a zoo records per checkpoint, the keys of
:meth:`eoreps.zoo.population.PopulationTrainer.evaluate`."""
PROPERTY_COLUMNS = (
    "model_id",
    "epoch",
    "seed",
    "activation",
    "init",
    "optimizer",
    "lr",
    "weight_decay",
    "dropout",
    "train_fraction",
    *METRIC_COLUMNS,
)


class ModelZoo(Dataset):
    """Checkpoints of a zoo; item ``i`` is ``(weights (D,) float32, properties dict)``.

    ``epochs``: keep only these epochs (None = all); ``query``: an optional pandas query string on the
    index (e.g. ``"activation == 'relu' and test_acc > 0.5"``); ``cache_shards``: shards kept in memory.
    """

    def __init__(self, root: str | Path, epochs: list[int] | None = None, query: str | None = None,
                 cache_shards: int = 64) -> None:
        self.store = ZooStore(root)
        self.manifest = self.store.read_manifest()
        index = self.store.read_index()
        if epochs is not None:
            index = index[index["epoch"].isin(list(epochs))]
        if query:
            index = index.query(query)
        self.index = index.reset_index(drop=True)
        self.is_backbone_zoo = self.manifest.get("kind") in ("backbone", "pretrained")
        if self.is_backbone_zoo:  # backbone (+ head) members: eoreps.zoo.backbones
            from eoreps.zoo.backbones import backbone_arch_from_manifest

            self.arch: Any = backbone_arch_from_manifest(self.manifest)
        else:
            self.arch = make_arch(self.manifest["architecture"], tuple(self.manifest["in_shape"]),
                                  self.manifest["num_classes"])
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._cache_size = cache_shards

    # ---------------------------------------------------------------- metadata
    @property
    def param_order(self) -> list[tuple[str, tuple[int, ...]]]:
        """``[(state_dict key, shape), ...]``: how a weight vector is laid out."""
        return param_order_of(self.manifest)

    @property
    def num_params(self) -> int:
        """D, the length of a weight vector."""
        return sum(math.prod(s) for _, s in self.param_order)

    @property
    def properties(self) -> pd.DataFrame:
        """One row per item: generating factors, epoch and metrics (plus shard/row)."""
        return self.index

    def layer_slices(self) -> dict[str, slice]:
        """Slice of each state_dict key within a weight vector."""
        out, o = {}, 0
        for k, s in self.param_order:
            n = math.prod(s)
            out[k] = slice(o, o + n)
            o += n
        return out

    # ------------------------------------------------------------------ access
    def _shard(self, name: str) -> torch.Tensor:
        if name in self._cache:
            self._cache.move_to_end(name)
            return self._cache[name]
        w = self.store.read_shard(name)["weights"]
        self._cache[name] = w
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return w

    def release_shards(self) -> None:
        """Drop the shards kept in memory (they are read again when needed)."""
        self._cache.clear()

    def __len__(self) -> int:
        return len(self.index)

    def weights(self, i: int) -> torch.Tensor:
        """(D,) float32 weight vector of item ``i``."""
        row = self.index.iloc[i]
        w = self._shard(row["shard"])
        self._check_rows(str(row["shard"]), w, int(row["row"]))
        return w[int(row["row"])].clone()

    def _check_rows(self, name: str, w: torch.Tensor, top: int) -> None:
        """One-line :class:`DataError` when shard ``name`` lacks row ``top`` (a checkpoint the index
        lists)."""
        if not 0 <= top < len(w):
            raise DataError(f"{self.store.shards / name}: holds {len(w)} checkpoints, the index wants row "
                            f"{top}; rerun 'eoreps zoo build' with the same options to rebuild it")

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        row = self.index.iloc[i]
        props = {
            k: (v.item() if hasattr(v, "item") else v) for k, v in row.items() if k not in ("shard", "row")
        }
        return self.weights(i), props

    def state_dict(self, i: int) -> dict[str, torch.Tensor]:
        """Item ``i`` as a state_dict of the architecture."""
        w = self.weights(i)
        return {
            k: w[sl].reshape(s)
            for (k, s), sl in zip(self.param_order, self.layer_slices().values(), strict=True)
        }

    def build_model(self, i: int) -> torch.nn.Module:
        """Item ``i`` rebuilt as a ready ``nn.Module`` in eval mode (its activation and dropout; a backbone
        zoo's member: its backbone, with its linear head unless the zoo holds backbones alone)."""
        if self.is_backbone_zoo:
            return self.arch.load(self.weights(i))
        row = self.index.iloc[i]
        net = ZooNet(self.arch, str(row["activation"]), float(row["dropout"]))
        return load_flat(net, self.weights(i)).eval()

    def dataset(self) -> ZooData:
        """The data set the zoo was trained on, as its manifest names it (``dataset_spec``,
        the build's seed)."""
        spec = self.manifest.get("dataset_spec")
        if not spec:
            raise DataError(
                f"{self.store.root}: the zoo manifest names no data set; pass the data explicitly"
            )
        return load_dataset(str(spec), int(self.manifest.get("seed", 0)))

    def weights_matrix(self) -> torch.Tensor:
        """(len(self), D) float32 weights of every item, in index order."""
        out = torch.empty(len(self), self.num_params)
        for name, grp in self.index.groupby("shard", sort=False):
            w = self._shard(str(name))
            self._check_rows(str(name), w, int(grp["row"].max()))
            out[torch.as_tensor(grp.index.to_numpy().copy())] = w[
                torch.as_tensor(grp["row"].to_numpy().copy())
            ]
        return out
