"""What the experiments' settings share: their ``--quick`` sizes, the :class:`FitConfig` they start from."""

from __future__ import annotations

from typing import Any, TypeVar

from eoreps.tasks.fit import FitConfig

S = TypeVar("S")


def smoke_settings(cls: type[S], **overrides: Any) -> S:
    """The ``--quick`` settings of an experiment: one seed, one epoch, the tiny backbone, ``smoke=True``.

    Args:
        cls: the experiment's settings dataclass.
        overrides: the experiment's own small sizes (``max_train``, ``batch_size``, ...).
    """
    return cls(**{"smoke": True, "seeds": (0,), "epochs": 1, "backbone": "cnn-tiny", **overrides})


def base_config(settings: Any, **fields: Any) -> FitConfig:
    """The :class:`FitConfig` every run of an experiment starts from: the sizes of ``settings`` (backbone,
    epochs, batch size, ``max_train`` / ``max_eval``, ``simeo_n``), ``patience = max(2, epochs)``, the
    ``test`` split; ``fields`` add or override the experiment's own."""
    return FitConfig(**{
        "backbone": settings.backbone, "epochs": settings.epochs, "batch_size": settings.batch_size,
        "max_train": settings.max_train, "max_eval": settings.max_eval, "simeo_n": settings.simeo_n,
        "eval_splits": ["test"], "patience": max(2, settings.epochs), **fields,
    })
