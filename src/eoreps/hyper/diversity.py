"""How different are a set of models from each other? (A check on generated weights.)

A generator can reach a high zero-shot accuracy by decoding every latent to (nearly) the same good model;
its samples are then copies, not a population. Two measures, reported by ``hyper sample`` for the
sampled models beside the anchors (distinct trained models) they were drawn around:

* **prediction disagreement**: the mean, over pairs of models, of the fraction of images on which the two
  predict different classes (0 = identical functions);
* **weight distance**: the mean pairwise L2 distance of the weight vectors, all in one unit order (pass
  weight-matched models, :mod:`eoreps.hyper.align`, or the distance mostly measures unit order).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from eoreps.zoo.architectures import Arch
from eoreps.zoo.population import stack_params
from eoreps.zoo.population_ops import population_forward


@torch.no_grad()
def predictions(arch: Arch, weights: torch.Tensor, activation: str, images: torch.Tensor, chunk: int = 64
                ) -> torch.Tensor:
    """Predicted classes (N, B) of N models (N, D) with one ``activation`` on ``images`` (B, C, H, W)."""
    out = [population_forward(arch, stack_params(arch, weights[i:i + chunk].float()), images, activation,
                              shared=True).argmax(-1) for i in range(0, len(weights), chunk)]
    return torch.cat(out)


def mean_pairwise_disagreement(preds: torch.Tensor, num_classes: int) -> float:
    """Mean over pairs i < j of the fraction of images where models i and j (rows of ``preds``
    (N, B)) differ."""
    n, b = preds.shape
    if n < 2:
        return float("nan")
    onehot = F.one_hot(preds, num_classes).reshape(n, -1).float()  # (N, B*K)
    agree = onehot @ onehot.T / b  # (N, N) fraction of equal predictions
    iu = torch.triu_indices(n, n, 1)
    return float(1.0 - agree[iu[0], iu[1]].mean())


def mean_pairwise_distance(weights: torch.Tensor) -> float:
    """Mean L2 distance over pairs of rows of ``weights`` (N, D)."""
    return float(torch.pdist(weights.double()).mean()) if len(weights) > 1 else float("nan")


def diversity(arch: Arch, weights: torch.Tensor, activation: str, images: torch.Tensor) -> dict[str, float]:
    """``{"prediction_disagreement", "weight_distance"}`` of a set of models (N, D)."""
    preds = predictions(arch, weights, activation, images)
    return {"prediction_disagreement": round(mean_pairwise_disagreement(preds, arch.num_classes), 4),
            "weight_distance": round(mean_pairwise_distance(weights), 4)}
