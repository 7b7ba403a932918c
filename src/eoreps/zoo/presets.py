"""Named zoo builds (``--preset``): dataset, architecture, grid and epochs in one word.

* ``digits-small`` — real scikit-learn digits (8 x 8), ``cnn_digits``, 256 members (4 seeds x 4
  activations x 4 initialisations x 2 optimizers x 2 learning rates), 15 epochs: one vectorized chunk,
  ~35 s on 2 idle CPU cores (measured 2026-11-23).
* ``mnist-cnn-s`` — real MNIST from an idx/csv folder (``--dataset PATH``), the published 2,464-parameter
  CNN, 1,000 members drawn at random from the published grid (seeds 0-9 x activation x init x optimizer
  x lr {1e-3, 1e-4} x weight decay {1e-3, 1e-4} x dropout {0, 0.5}), 25 epochs, batch 10: the zoo of
  the hyper-representation benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

from eoreps.errors import unknown_name
from eoreps.zoo.architectures import INITS
from eoreps.zoo.grid import Grid


@dataclass(frozen=True)
class Preset:
    """A named build."""

    name: str
    dataset: str | None  # None: the user must give --dataset
    arch: str
    grid: Grid
    epochs: int
    description: str


_ACTS = ["tanh", "relu", "sigmoid", "gelu"]

PRESETS: dict[str, Preset] = {
    "digits-small": Preset(
        "digits-small",
        "digits",
        "cnn_digits",
        Grid(
            seed=[0, 1, 2, 3],
            activation=_ACTS,
            init=list(INITS),
            optimizer=["sgd", "adam"],
            lr=[1e-2, 1e-3],
            weight_decay=[1e-4],
            dropout=[0.0],
            train_fraction=[1.0],
        ),
        15,
        "real sklearn digits, cnn_digits, 256 members, 15 epochs",
    ),
    "mnist-cnn-s": Preset(
        "mnist-cnn-s",
        None,
        "cnn_s",
        Grid(
            seed=list(range(10)),
            activation=_ACTS,
            init=list(INITS),
            optimizer=["sgd", "adam"],
            lr=[1e-3, 1e-4],
            weight_decay=[1e-3, 1e-4],
            dropout=[0.0, 0.5],
            train_fraction=[1.0],
            sampling="random",
            n_models=1000,
        ),
        25,
        "real MNIST (idx/csv folder), published CNN (2,464 params), 1,000 members, 25 epochs",
    ),
}


def get_preset(name: str) -> Preset:
    """The preset ``name`` (one-line error listing the others if unknown)."""
    if name not in PRESETS:
        raise unknown_name("preset", name, list(PRESETS))
    return PRESETS[name]
