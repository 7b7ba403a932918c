"""Collapse monitoring and online kNN accuracy during pretraining.

A self-supervised loss can keep falling while the representation collapses (every input mapped to
nearly the same vector, or to a low-dimensional subspace). Each epoch, :class:`SSLMonitor` embeds a
fixed set of samples with every encoder (eval mode, no augmentation) and computes on the
L2-normalised backbone features ``z`` ``(N, D)``:

* ``std_ratio = sqrt(D) * mean_d std_n(z[n, d])`` -- the per-dimension standard deviation of the
  normalised embeddings (Chen & He 2021), scaled so that directions spread evenly on the sphere give
  ~1 and complete collapse gives 0;
* ``erank`` -- effective rank (Roy & Vetterli 2007; RankMe, Garrido et al. 2023): ``exp(H(p))`` with
  ``p = s / sum(s)`` the normalised singular values of the centred ``z``; 1 for a one-dimensional
  representation, up to ``min(N, D)``.

Below ``std_ratio_min`` or ``erank_min`` the monitor emits a loud warning (and logs
``monitor/collapsed = 1``). Optionally it reports the accuracy of a cosine kNN classifier (k = 20)
fitted on labelled training features and evaluated on a small validation split.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from eoreps.ssl.data import PretrainData


class CollapseWarning(UserWarning):
    """The representation collapsed (see :mod:`eoreps.ssl.monitor`)."""


def collapse_stats(z: torch.Tensor) -> dict[str, float]:
    """``z`` ``(N, D)`` features -> ``{"std_ratio", "erank", "dim"}`` (see the module docstring)."""
    z = F.normalize(z.detach().double(), dim=1)
    n, d = z.shape
    std = z.std(dim=0, unbiased=False).mean().item() if n > 1 else 0.0
    s = torch.linalg.svdvals(z - z.mean(dim=0, keepdim=True))
    total = s.sum()
    if total <= 1e-12:
        erank = 0.0  # every embedding identical: no direction left at all
    else:
        p = s / total
        p = p[p > 0]
        erank = float(torch.exp(-(p * p.log()).sum()))
    return {"std_ratio": std * math.sqrt(d), "erank": erank, "dim": float(d)}


@torch.no_grad()
def embed_data(module: Any, data: PretrainData, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Backbone features of ``data`` for every encoder of ``module``: ``{key: (N, D)}`` on the CPU."""
    was_training = module.training
    module.eval()
    out: dict[str, list[torch.Tensor]] = {}
    try:
        for i in range(0, len(data), batch_size):
            batch = {m: x[i:i + batch_size].to(module.device) for m, x in data.images.items()}
            for k, z in module.embed(module.normalize(batch)).items():
                out.setdefault(k, []).append(z.float().cpu())
    finally:
        module.train(was_training)
    return {k: torch.cat(v) for k, v in out.items()}


def knn_accuracy(train_z: torch.Tensor, train_y: torch.Tensor, val_z: torch.Tensor, val_y: torch.Tensor,
                 k: int = 20) -> float:
    """Accuracy of a distance-weighted cosine kNN classifier (scikit-learn)."""
    from sklearn.neighbors import KNeighborsClassifier

    clf = KNeighborsClassifier(n_neighbors=min(k, len(train_z)), metric="cosine", weights="distance")
    clf.fit(train_z.numpy(), train_y.numpy())
    return float((clf.predict(val_z.numpy()) == val_y.numpy()).mean())


class SSLMonitor(L.Callback):
    """Collapse statistics (and kNN accuracy) at the end of every ``every_n_epochs`` training epochs.

    Args:
        data: samples to embed for the collapse statistics (raw, unnormalised).
        knn_train, knn_val: labelled sets for the online kNN accuracy (both or neither).
        every_n_epochs: how often to run.
        std_ratio_min, erank_min: collapse thresholds.
        k: neighbours of the kNN classifier.

    Attributes:
        history: one dict per run: ``{"epoch", "step", "<key>/std_ratio", "<key>/erank", "<key>/knn_acc",
            "collapsed"}``.
    """

    def __init__(
        self,
        data: PretrainData,
        knn_train: PretrainData | None = None,
        knn_val: PretrainData | None = None,
        every_n_epochs: int = 1,
        std_ratio_min: float = 0.05,
        erank_min: float = 1.5,
        k: int = 20,
    ) -> None:
        self.data, self.knn_train, self.knn_val = data, knn_train, knn_val
        self.every_n_epochs = max(1, every_n_epochs)
        self.std_ratio_min, self.erank_min, self.k = std_ratio_min, erank_min, k
        self.history: list[dict[str, Any]] = []

    def measure(self, module: Any) -> dict[str, Any]:
        """Collapse statistics and kNN accuracy of ``module``'s encoders now."""
        row: dict[str, Any] = {}
        collapsed = []
        for key, z in embed_data(module, self.data).items():
            st = collapse_stats(z)
            row[f"{key}/std_ratio"], row[f"{key}/erank"] = st["std_ratio"], st["erank"]
            if st["std_ratio"] < self.std_ratio_min or st["erank"] < self.erank_min:
                collapsed.append(
                    f"{key} (std_ratio {st['std_ratio']:.3f}, effective rank {st['erank']:.2f} of "
                    f"{int(st['dim'])})"
                )
        if self.knn_train is not None and self.knn_val is not None and self.knn_train.labels is not None \
                and self.knn_val.labels is not None:
            tr, va = embed_data(module, self.knn_train), embed_data(module, self.knn_val)
            for key in tr:
                row[f"{key}/knn_acc"] = knn_accuracy(
                    tr[key], self.knn_train.labels, va[key], self.knn_val.labels, self.k
                )
            if len(tr) > 1:  # several encoders: late fusion of their features as well
                cat_tr = torch.cat([F.normalize(z, dim=1) for z in tr.values()], dim=1)
                cat_va = torch.cat([F.normalize(z, dim=1) for z in va.values()], dim=1)
                row["late_fusion/knn_acc"] = knn_accuracy(cat_tr, self.knn_train.labels, cat_va,
                                                          self.knn_val.labels, self.k)
        row["collapsed"] = collapsed
        return row

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs and not self._last_epoch(trainer):
            return
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step, **self.measure(pl_module)}
        self.history.append(row)
        for k, v in row.items():
            if isinstance(v, float) and np.isfinite(v):
                pl_module.log(f"monitor/{k}", v, rank_zero_only=True)
        pl_module.log("monitor/collapsed", float(bool(row["collapsed"])), rank_zero_only=True)
        if row["collapsed"] and trainer.is_global_zero:
            bar = "!" * 78
            warnings.warn(f"\n{bar}\nREPRESENTATION COLLAPSE at epoch {trainer.current_epoch}: "
                          f"{'; '.join(row['collapsed'])}.\nThe loss may still be falling. Try a lower lr, a "
                          f"higher temperature, or a larger batch.\n{bar}", CollapseWarning, stacklevel=1)

    @staticmethod
    def _last_epoch(trainer: L.Trainer) -> bool:
        max_steps = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        return max_steps is not None and trainer.global_step >= max_steps

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
