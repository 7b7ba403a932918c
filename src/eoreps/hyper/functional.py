"""Functional reconstruction loss: decoded weights should *compute* what the original model computes.

The token MSE of :mod:`eoreps.hyper.losses` treats every weight alike, but a network's function is far
more sensitive to some weights than to others: on the MNIST CNN-s zoo a reconstruction that keeps 65 %
of the token variance (standardised MSE 0.34) still leaves the best models at ~0.25 test accuracy
(docs/hyper.md). This term compares the decoded network with the original one where it matters, on
images: both are run on a random batch of the zoo's training images and the decoded model's class
distribution is pulled towards the original's,

``F = 1/(P B) sum_p sum_b KL( softmax(f(x_b; w_p)) || softmax(f(x_b; w^_p)) )``

(knowledge distillation with temperature 1, Hinton et al. 2015, the original model as teacher). The
``P`` networks of a batch run at once through :func:`eoreps.zoo.population_ops.population_forward`
(the zoo's vectorized forward, one shared image batch), which is differentiable in the weights.

Every target the autoencoder reconstructs (the view's permuted clean weights, the canonical form, the
weight-matched model) computes the same function as the original model, so the teacher is always the
original weight vector.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from eoreps.errors import ConfigError
from eoreps.zoo.architectures import ACTIVATIONS, Arch
from eoreps.zoo.population import stack_params
from eoreps.zoo.population_ops import population_forward


class FunctionalLoss(nn.Module):
    """KL divergence between the class distributions of original and decoded models on probe images.

    Args:
        arch: the zoo's architecture.
        images: (N, C, H, W) probe pool (the zoo's training images); each call draws ``batch`` of them.
        activations: names indexed by the ``act`` argument of :meth:`forward` (e.g. the zoo's activations).
        batch: images per call.
    """

    def __init__(self, arch: Arch, images: torch.Tensor, activations: list[str], batch: int = 64) -> None:
        super().__init__()
        if images.dim() != 4 or tuple(images.shape[1:]) != tuple(arch.in_shape):
            raise ConfigError(
                f"functional loss: probe images have shape {tuple(images.shape[1:])}, architecture "
                f"{arch.name} expects {tuple(arch.in_shape)}"
            )
        if batch < 1:
            raise ConfigError(f"functional_images={batch} must be >= 1")
        unknown = [a for a in activations if a not in ACTIVATIONS]
        if unknown:
            raise ConfigError(
                f"functional loss: unknown activation(s) {unknown}; known: {sorted(ACTIVATIONS)}"
            )
        self.arch, self.activations, self.batch = arch, list(activations), int(batch)
        # not saved in checkpoints: rebuilt from the zoo's data set when a fit resumes
        self.register_buffer("images", images.float().contiguous(), persistent=False)

    def logits(self, weights: torch.Tensor, act: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(P, D) weights with activation indices ``act`` (P,) on images (B, C, H, W) -> logits (P, B, K)."""
        if weights.shape[1] != self.arch.num_params:
            raise ValueError(f"weights have {weights.shape[1]} values per model, {self.arch.name} needs "
                             f"{self.arch.num_params}")
        order = torch.argsort(act, stable=True)  # one run per activation in population_forward
        names = [self.activations[int(i)] for i in act[order]]
        out = population_forward(self.arch, stack_params(self.arch, weights[order]), x, names, shared=True)
        return out[torch.argsort(order)]

    def draw(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random batch (B, C, H, W) of probe images."""
        idx = torch.randint(len(self.images), (min(self.batch, len(self.images)),), generator=generator,
                            device=self.images.device)
        return self.images[idx]

    def forward(self, decoded: torch.Tensor, original: torch.Tensor, act: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """``decoded`` (V*P, D): V reconstructions of each of the P ``original`` (P, D) models (view-major,
        as ``torch.cat([rec1, rec2])``); ``act`` (P,). Returns the mean KL (teacher = original)."""
        P = original.shape[0]
        if decoded.shape[0] % P:
            raise ValueError(f"{decoded.shape[0]} decoded models for {P} originals")
        V = decoded.shape[0] // P
        x = self.draw(generator)
        with torch.no_grad():
            teacher = F.log_softmax(self.logits(original.float(), act, x).float(), -1)  # (P, B, K)
        student = F.log_softmax(self.logits(decoded, act.repeat(V), x).float(), -1)  # (V*P, B, K)
        t = teacher.repeat(V, 1, 1)
        return F.kl_div(student.flatten(0, 1), t.flatten(0, 1), log_target=True, reduction="batchmean")
