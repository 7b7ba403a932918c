"""Fine-tune a batch of weight vectors (sampled or random) on a data set, vectorized across models.

Wraps the zoo's :class:`eoreps.zoo.population.PopulationTrainer` (the exact training recipe of the
zoo: per-model data order, batch size, stacked SGD/Adam) with its weights replaced by the given ones.
Also provides data sets of another resolution for transfer (``digits`` at 28 x 28, MNIST at 8 x 8).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from eoreps.errors import DataError
from eoreps.zoo.architectures import Arch, build_model, flatten_state
from eoreps.zoo.datasets import ZooData, load_dataset
from eoreps.zoo.grid import Member
from eoreps.zoo.population import PopulationTrainer, TrainOptions, eval_population


@dataclass
class Recipe:
    """How sampled / random models are trained (the zoo's recipe of the anchor models)."""

    activation: str
    init: str
    optimizer: str
    lr: float
    weight_decay: float
    batch_size: int = 10


def finetune_curve(arch: Arch, weights: torch.Tensor | None, recipe: Recipe, data: ZooData, epochs: list[int],
                   n: int | None = None, seed: int = 0) -> dict[int, torch.Tensor]:
    """Test accuracy (P,) after each epoch in ``epochs`` (0 = before training).

    ``weights`` (P, D) start the models; ``None`` starts ``n`` models from the recipe's random
    initialisation (seeds ``seed .. seed + n - 1``).
    """
    P = int(weights.shape[0]) if weights is not None else int(n or 0)
    if P < 1:
        raise ValueError("finetune_curve needs weights or n >= 1")
    members = [Member(i, seed + i, recipe.activation, recipe.init, recipe.optimizer, recipe.lr,
                      recipe.weight_decay, 0.0, 1.0) for i in range(P)]
    # fp32 on either engine: curves of different runs and CPUs must be comparable (``auto`` would pick a
    # CPU-dependent, measured kernel precision)
    trainer = PopulationTrainer(arch, members, data, TrainOptions(batch_size=recipe.batch_size,
                                                                  precision="fp32"), chunk_seed=seed)
    if weights is not None:
        trainer.stack.set_members(torch.nan_to_num(weights.float(), nan=0.0, posinf=0.0, neginf=0.0))
    out: dict[int, torch.Tensor] = {}
    todo = sorted(set(int(e) for e in epochs))
    for e in range(0, max(todo) + 1):
        if e > 0:
            trainer.train_epoch()
        if e in todo:
            params = {k: v.detach() for k, v in trainer.stack.params.items()}
            _, acc = eval_population(arch, params, recipe.activation, data.x_test, data.y_test)
            out[e] = torch.as_tensor(acc, dtype=torch.float32)
    return out


def random_weights(arch: Arch, recipe: Recipe, n: int, seed: int = 0) -> torch.Tensor:
    """(n, D) freshly initialised weights of the recipe (seeds ``seed ..``)."""
    return torch.stack(
        [flatten_state(build_model(arch, recipe.activation, recipe.init, seed + i)) for i in range(n)]
    )


def resized(data: ZooData, in_shape: tuple[int, int, int], name: str | None = None) -> ZooData:
    """``data`` with its images resized (bilinear, antialiased) to ``in_shape`` (channels must match)."""
    c, h, w = in_shape
    if data.in_shape[0] != c:
        raise DataError(f"dataset '{data.name}' has {data.in_shape[0]} channels, the architecture needs {c}; "
                        f"pick a transfer dataset with {c} channel(s)")
    if data.in_shape[1:] == (h, w):
        return data

    def rs(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            x, size=(h, w), mode="bilinear", antialias=True, align_corners=False
        ).contiguous()

    return ZooData(
        name or f"{data.name}@{h}x{w}",
        rs(data.x_train),
        data.y_train,
        rs(data.x_val),
        data.y_val,
        rs(data.x_test),
        data.y_test,
        data.num_classes,
        data.synthetic,
        f"{data.source} resized to {h}x{w}",
    )


def load_transfer_data(spec: str, in_shape: tuple[int, int, int], seed: int = 0) -> ZooData:
    """A ``--transfer`` data set (``digits``, ``simeo`` or an MNIST-style PATH) resized to ``in_shape``."""
    return resized(load_dataset(spec, seed), in_shape)
