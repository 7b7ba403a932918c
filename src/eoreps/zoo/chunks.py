"""One zoo chunk: its seed and its training loop, shared by the local and the Ray backend.

``zoo/build.py`` (the driver) and ``zoo/ray_backend.py`` (the remote tasks) both import from here, so
neither imports the other's internals (no import circle).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from eoreps.progress import progress
from eoreps.zoo.architectures import Arch
from eoreps.zoo.datasets import ZooData
from eoreps.zoo.grid import Member
from eoreps.zoo.population import PopulationTrainer, TrainOptions

Sink = Callable[[int, torch.Tensor, list[dict[str, Any]], dict[str, torch.Tensor]], None]

#: chunks below this index keep the seed ``seed * 1000 + chunk`` of the zoos built before (resume and
#: reproducibility of existing zoos); from here on that formula would collide with the next zoo seed's chunks.
LEGACY_CHUNKS = 1_000


def chunk_seed(cfg_seed: int, chunk: int) -> int:
    """Seed of a chunk's dropout masks and shared data order.

    ``seed * 1000 + chunk`` for ``chunk < 1000`` (unchanged, so existing zoos resume bit for bit); beyond,
    a :class:`numpy.random.SeedSequence` of ``(seed, chunk)`` mapped into ``[2**32, 2**33)``, which no
    legacy seed of a zoo seed below 4 294 967 reaches (so seed 0 chunk 1000 no longer equals seed 1 chunk 0).
    """
    seed, chunk = int(cfg_seed), int(chunk)
    if chunk < LEGACY_CHUNKS:
        return seed * LEGACY_CHUNKS + chunk
    word = int(np.random.SeedSequence([seed, chunk]).generate_state(1, np.uint32)[0])
    return 2 ** 32 + word


def member_rows(members: list[Member], epoch: int, metrics: dict[str, np.ndarray], extra: dict[str, Any]
                ) -> list[dict[str, Any]]:
    """One properties row per member for ``epoch``."""
    rows = []
    for i, m in enumerate(members):
        row = {**m.as_dict(), "epoch": epoch, **extra}
        row.update({k: float(v[i]) for k, v in metrics.items()})
        rows.append(row)
    return rows


def run_chunk(arch: Arch, members: list[Member], data: ZooData, options: TrainOptions, epochs: int,
              chunk_seed: int, sink: Sink, extra: dict[str, Any],
              state: dict[str, torch.Tensor] | None = None, desc: str = "chunk") -> int:
    """Train one chunk from scratch (or from ``state``) to ``epochs``; ``sink(epoch, weights (P, D),
    rows, state)`` receives every epoch's checkpoint, epoch 0 included unless resuming.

    Returns the number of training images seen: members x epochs trained here x images per epoch.
    """
    trainer = PopulationTrainer(arch, members, data, options, chunk_seed=chunk_seed)

    def checkpoint() -> None:
        rows = member_rows(members, trainer.epoch, trainer.evaluate(), extra)
        sink(trainer.epoch, trainer.member_weights(), rows, trainer.state_dict())

    if state is not None:
        trainer.load_state_dict(state)
    else:
        checkpoint()  # epoch 0
    start = trainer.epoch
    for _ in progress(range(trainer.epoch, epochs), desc=desc, unit="epoch"):
        trainer.train_epoch()
        checkpoint()
    return trainer.P * (trainer.epoch - start) * len(trainer.subset)
