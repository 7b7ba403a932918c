"""Tiny in-memory data sets for the evaluation tests (no SimEO generation)."""

from __future__ import annotations

import torch

from eoreps.evaluation.data import EvalData, make_eval_data

CLASSES = ("a", "b", "c")


def toy_split(n: int, seed: int, task: str, size: int = 8) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Two modalities whose means depend on the class, so a probe can learn the task."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    y = y[torch.randperm(n, generator=g)]
    shift = torch.tensor([1.5, -1.5, 0.75, 0.0])[None, :, None, None]
    s2 = torch.randn(n, 4, size, size, generator=g) + y[:, None, None, None].float() * shift
    s1 = torch.randn(n, 2, size, size, generator=g) + 0.5 * y[:, None, None, None].float()
    if task == "multilabel":
        t = torch.nn.functional.one_hot(y, 3).float()
        t[:, 2] = torch.maximum(t[:, 2], (torch.rand(n, generator=g) < 0.3).float())
    elif task == "segment":
        t = y[:, None, None].expand(n, size, size).clone()
        t[:, : size // 4] = 0
    else:
        t = y
    return {"s2": s2, "s1": s1}, t


def toy_data(task: str = "classify", n_train: int = 90, n_eval: int = 45, size: int = 8) -> EvalData:
    """A 3-class toy :class:`EvalData` (train / val / test)."""
    splits = {"train": toy_split(n_train, 0, task, size), "val": toy_split(n_eval, 1, task, size),
              "test": toy_split(n_eval, 2, task, size)}
    return make_eval_data(f"toy-{task}", task, CLASSES, splits)
