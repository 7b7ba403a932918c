"""Generating factors of a zoo: the grid, and how members are drawn from it.

A grid YAML lists values per factor (any factor left out keeps its default)::

    seed: [0, 1, 2, 3]          # or {range: 100} for seeds 0..99
    activation: [tanh, relu, sigmoid, gelu]
    init: [uniform, normal, kaiming_uniform, kaiming_normal]
    optimizer: [sgd, adam]
    lr: [1.0e-3, 1.0e-4]
    weight_decay: [1.0e-3, 1.0e-4]
    dropout: [0.0, 0.5]
    train_fraction: [1.0]
    sampling: grid              # 'grid' (full product) or 'random'
    n_models: 1000              # with sampling: random (drawn without replacement from the product)

Members are numbered ``model_id`` 0..M-1 in a deterministic order (the product order for ``grid``,
the draw order for ``random``), so a rebuild with the same grid and ``--seed`` plans the same zoo.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eoreps.config import read_yaml
from eoreps.errors import ConfigError, unknown_name
from eoreps.zoo.architectures import ACTIVATIONS, INITS

FACTORS = ("seed", "activation", "init", "optimizer", "lr", "weight_decay", "dropout", "train_fraction")
OPTIMIZERS = ("sgd", "adam")


class MemberFactors:
    """What every kind of zoo member (a frozen dataclass with ``train_fraction``) offers."""

    train_fraction: float

    def as_dict(self) -> dict[str, Any]:
        """The factors as a plain dict (one row of the properties table)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @property
    def group_key(self) -> float:
        """Members sharing this key can train together in one vectorized chunk: the same training
        subset, hence the same number of steps per epoch (activations and optimizers may differ)."""
        return self.train_fraction


@dataclass(frozen=True)
class Member(MemberFactors):
    """One zoo member's hyperparameters (its generating factors)."""

    model_id: int
    seed: int
    activation: str
    init: str
    optimizer: str
    lr: float
    weight_decay: float
    dropout: float
    train_fraction: float


@dataclass
class Grid:
    """Values per generating factor and the sampling mode."""

    seed: list[int] = field(default_factory=lambda: [0])
    activation: list[str] = field(default_factory=lambda: ["tanh", "relu", "sigmoid", "gelu"])
    init: list[str] = field(default_factory=lambda: list(INITS))
    optimizer: list[str] = field(default_factory=lambda: ["sgd", "adam"])
    lr: list[float] = field(default_factory=lambda: [1e-3, 1e-4])
    weight_decay: list[float] = field(default_factory=lambda: [1e-3, 1e-4])
    dropout: list[float] = field(default_factory=lambda: [0.0, 0.5])
    train_fraction: list[float] = field(default_factory=lambda: [1.0])
    sampling: str = "grid"
    n_models: int | None = None

    def validate(self, where: str = "grid") -> Grid:
        """Check names and ranges; raises a one-line :class:`ConfigError`."""
        for a in self.activation:
            if a not in ACTIVATIONS:
                raise ConfigError(f"{where}: {unknown_name('activation', a, list(ACTIVATIONS)).args[0]}")
        for i in self.init:
            if i not in INITS:
                raise ConfigError(f"{where}: {unknown_name('init', i, list(INITS)).args[0]}")
        for d in self.dropout:
            if not 0.0 <= d < 1.0:
                raise ConfigError(f"{where}: dropout {d} outside [0, 1)")
        check_common_factors(self, FACTORS, where)
        return self

    @property
    def size(self) -> int:
        """Number of points in the full product."""
        return int(np.prod([len(getattr(self, f)) for f in FACTORS]))


def check_common_factors(grid: Any, factors: tuple[str, ...], where: str) -> None:
    """The checks every grid shares (optimizer names, training fractions, learning rates, sampling, no empty
    factor); a one-line :class:`ConfigError`."""
    for o in grid.optimizer:
        if o not in OPTIMIZERS:
            raise ConfigError(f"{where}: {unknown_name('optimizer', o, list(OPTIMIZERS)).args[0]}")
    for f in grid.train_fraction:
        if not 0.0 < f <= 1.0:
            raise ConfigError(f"{where}: train_fraction {f} outside (0, 1]")
    for v in grid.lr:
        if v <= 0:
            raise ConfigError(f"{where}: lr {v} must be positive")
    if grid.sampling not in ("grid", "random"):
        raise ConfigError(f"{where}: sampling '{grid.sampling}' must be 'grid' or 'random'")
    if grid.n_models is not None and grid.n_models < 1:
        raise ConfigError(f"{where}: n_models {grid.n_models} must be >= 1")
    if grid.sampling == "random" and not grid.n_models:
        raise ConfigError(f"{where}: sampling: random needs n_models: N")
    for name in factors:
        if not getattr(grid, name):
            raise ConfigError(f"{where}: factor '{name}' has no values")


def read_grid_values(source: str | Path | dict[str, Any] | None, cls: type, factors: tuple[str, ...]
                     ) -> tuple[dict[str, Any], str]:
    """The keys of a grid YAML file or dict for grid class ``cls``: ``-`` read as ``_``, unknown keys refused,
    ``seed: {range: N, start: S}`` expanded, a scalar factor made a one-value list. Returns it and the
    name errors use."""
    where = str(source) if isinstance(source, (str, Path)) else "grid"
    data: dict[str, Any] = {} if source is None else (
        dict(source) if isinstance(source, dict) else read_yaml(source, what="grid"))
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    names = [f.name for f in dataclasses.fields(cls)]
    for k in data:
        if k not in names:
            raise ConfigError(f"{where}: {unknown_name('grid key', k, names).args[0]}")
    if isinstance(data.get("seed"), dict):
        spec = data["seed"]
        if set(spec) - {"range", "start"} or "range" not in spec:
            raise ConfigError(f"{where}: seed must be a list or {{range: N, start: S}}")
        start = int(spec.get("start", 0))
        data["seed"] = list(range(start, start + int(spec["range"])))
    for k in factors:
        if k in data and not isinstance(data[k], list):
            data[k] = [data[k]]
    return data, where


def load_grid(source: str | Path | dict[str, Any] | None) -> Grid:
    """A :class:`Grid` from a YAML file or dict (``seed: {range: N}`` expands to 0..N-1)."""
    data, where = read_grid_values(source, Grid, FACTORS)
    try:
        grid = Grid(**data)
        grid.seed = [int(s) for s in grid.seed]
        grid.lr = [float(v) for v in grid.lr]
        grid.weight_decay = [float(v) for v in grid.weight_decay]
        grid.dropout = [float(v) for v in grid.dropout]
        grid.train_fraction = [float(v) for v in grid.train_fraction]
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: bad grid value ({e}); see docs/zoo.md for the grid format") from None
    return grid.validate(where)


def plan_members(grid: Grid, seed: int = 0) -> list[Member]:
    """The deterministic member list of ``grid`` (full product, or a random draw seeded by ``seed``)."""
    return [Member(i, *c) for i, c in enumerate(plan_combos(grid, FACTORS, seed))]  # type: ignore[arg-type]


def plan_combos(grid: Any, factors: tuple[str, ...], seed: int = 0) -> list[tuple[Any, ...]]:
    """The factor tuples of any grid (attributes ``factors``, ``sampling``, ``n_models``): the full product in
    order (its first ``n_models`` when set), or ``n_models`` points drawn without replacement seeded by
    ``seed``."""
    values = [getattr(grid, f) for f in factors]
    total = int(np.prod([len(v) for v in values]))
    if grid.sampling == "grid":
        combos = list(itertools.product(*values))
        return combos[: grid.n_models] if grid.n_models is not None else combos
    n = int(grid.n_models or 0)
    if n > total:
        raise ConfigError(
            f"grid: n_models {n} exceeds the {total} points of the grid; add seeds or lower n_models"
        )
    rng = np.random.default_rng([seed, 20240601])
    flat = rng.choice(total, size=n, replace=False)
    dims = [len(v) for v in values]
    combos = []
    for f in flat:
        idx = np.unravel_index(int(f), dims)
        combos.append(tuple(values[d][int(i)] for d, i in enumerate(idx)))
    return combos
