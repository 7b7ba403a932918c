"""The one gradient-training loop of the evaluation (fine-tuning, adapters, supervised, decoders).

Every trained protocol goes through :func:`fit`, so supervised training from scratch and fine-tuning a
pretrained encoder differ only in the initial weights and the per-group learning rates, never in the
optimiser, schedule, augmentation or step budget. Models are :class:`eoreps.tasks.multitask.MultiHeadModel`
(the supervised code's encoder + head container, with its linear / U-Net heads and task losses); this loop
replaces Lightning's because it needs parameter groups with their own learning rates and frozen sub-modules
kept in eval mode, and because for these few-second CPU fits a plain loop has no start-up cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from eoreps.evaluation.protocols.base import TrainOptions
from eoreps.optim import adamw
from eoreps.progress import progress
from eoreps.tasks.spec import TaskSpec


def _flip(batch: dict[str, torch.Tensor], target: torch.Tensor, segment: bool,
          gen: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Random horizontal / vertical flips per sample of every image tensor (and of the mask)."""
    b = target.shape[0]
    out = dict(batch)
    for dim in (-1, -2):
        sel = torch.rand(b, generator=gen) < 0.5
        if not sel.any():
            continue
        for m, x in out.items():
            if x.dim() == 4:
                out[m] = torch.where(sel[:, None, None, None], x.flip(dim), x)
        if segment:
            target = torch.where(sel[:, None, None], target.flip(dim), target)
    return out, target


def num_steps(n: int, opts: TrainOptions) -> int:
    """Optimiser steps for ``n`` labelled samples (see :class:`TrainOptions`)."""
    steps = max(opts.min_steps, opts.epochs * math.ceil(n / opts.batch_size))
    return min(steps, opts.max_steps) if opts.max_steps > 0 else steps


def fit(model: nn.Module, task: TaskSpec, groups: Sequence[dict], inputs: dict[str, torch.Tensor],
        target: torch.Tensor, idx: np.ndarray, opts: TrainOptions, seed: int,
        frozen: Sequence[nn.Module] = (), desc: str = "train", precision: str = "fp32") -> dict[str, float]:
    """Train ``model`` (batch dict -> ``{task.name: output}``) on ``inputs[idx]``.

    Args:
        model: e.g. a :class:`~eoreps.tasks.multitask.MultiHeadModel`.
        task: the task (its ``loss``).
        groups: AdamW parameter groups, each ``{"params": [...], "lr": ...}`` (weight decay is applied to
            weights, not to biases and norm parameters).
        inputs: modality -> ``(N, C, H, W)`` / ``(N, C)`` normalised tensors of the whole split.
        target: ``(N, ...)`` targets of the split.
        idx: ``(n,)`` indices of the labelled subset.
        opts: step budget, batch size, weight decay, augmentation.
        seed: batch order and augmentation seed.
        frozen: sub-modules kept in eval mode (frozen batch-norm statistics).
        precision: ``fp32`` or ``bf16`` (the forward pass under CPU bf16 autocast, the loss in float32).

    Returns:
        ``{"steps": ..., "final_loss": ...}`` (mean loss of the last 10 steps).
    """
    gen = torch.Generator().manual_seed(seed)
    idx_t = torch.as_tensor(np.asarray(idx), dtype=torch.long)
    n = len(idx_t)
    steps = num_steps(n, opts)
    bs = min(opts.batch_size, n)
    param_groups = []
    for g in groups:
        params = [p for p in g["params"] if p.requires_grad]
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        if decay:
            param_groups.append({"params": decay, "lr": g["lr"], "weight_decay": opts.weight_decay})
        if no_decay:
            param_groups.append({"params": no_decay, "lr": g["lr"], "weight_decay": 0.0})
    if not param_groups:
        return {"steps": 0.0, "final_loss": float("nan")}
    opt = adamw(param_groups)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    model.train()
    for m in frozen:
        m.eval()
    segment = task.kind == "segment"
    losses: list[float] = []
    perm = idx_t[torch.randperm(n, generator=gen)]
    pos = 0
    for _ in progress(range(steps), desc=desc, total=steps, unit="step"):
        if pos + bs > n:
            perm, pos = idx_t[torch.randperm(n, generator=gen)], 0
        b = perm[pos:pos + bs]
        pos += bs
        batch = {m: x[b] for m, x in inputs.items()}
        y = target[b]
        if opts.augment:
            batch, y = _flip(batch, y, segment, gen)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(batch)[task.name]
        loss = task.loss(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return {"steps": float(steps), "final_loss": float(np.mean(losses[-10:]))}


@torch.no_grad()
def predict(
    model: nn.Module, task: TaskSpec, inputs: dict[str, torch.Tensor], batch_size: int = 256,
    precision: str = "fp32",
) -> np.ndarray:
    """Model outputs on a whole split, eval mode: ``(N, K)`` scores (classify), probabilities
    (multilabel) or ``(N, H, W)`` predicted classes (segment); ``precision="bf16"``: under bf16 autocast."""
    model.eval()
    n = int(next(iter(inputs.values())).shape[0])
    out = []
    for s in range(0, n, batch_size):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            o = model({m: x[s:s + batch_size] for m, x in inputs.items()})[task.name].float()
        if task.kind == "multilabel":
            o = torch.sigmoid(o)
        elif task.kind == "segment":
            o = o.argmax(1)
        out.append(o)
    return torch.cat(out).numpy()
