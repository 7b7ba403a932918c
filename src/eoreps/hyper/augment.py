"""Augmentations of weight vectors for hyper-representation learning.

* **Permutation** of the hidden neurons / channels of every hidden layer: the rows (and biases) of
  layer ``l`` are permuted and the matching input columns of layer ``l + 1`` follow, so the network
  computes exactly the same function (element-wise activations, max-pooling and channel-major flatten
  all commute with a channel permutation). The output layer is never permuted.
* **Additive Gaussian noise** on the (standardised) tokens.
* **Random erasing**: each token is set to zero with a given probability.

:func:`two_views` draws two independently augmented views of a batch; the reconstruction target of a
view is its permuted, noise- and erasure-free version (a permutation changes the tokens, so each view
is reconstructed in its own order).

Permutations are applied as one batched gather on the flat weight vector (index tensor (B, D)), which
keeps them exact: weights are moved, never recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from eoreps.errors import DataError
from eoreps.hyper.tokens import Tokenizer, TokenScaler


class Permuter:
    """Function-preserving permutations of the hidden units of a sequential conv/linear network.

    Assumes the layers of the tokenizer are applied in order, each consuming the previous one's
    output (through element-wise activations, pooling and a channel-major flatten), which holds for
    every architecture of :mod:`eoreps.zoo.architectures`.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tok = tokenizer
        self.layers = tokenizer.layers
        self.hidden = list(range(len(self.layers) - 1))
        for li in self.hidden:
            cur, nxt = self.layers[li], self.layers[li + 1]
            if nxt.fan_in % cur.n_out != 0:
                raise DataError(f"layers {cur.name} -> {nxt.name}: {nxt.fan_in} inputs are not a multiple of "
                                f"{cur.n_out} units; the architecture is not a plain sequential network")

    def random_perms(self, batch: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """One random permutation (B, n_l) per hidden layer."""
        return [torch.argsort(torch.rand(batch, self.layers[li].n_out, generator=generator), dim=1)
                for li in self.hidden]

    def identity_perms(self, batch: int) -> list[torch.Tensor]:
        """Identity permutations (B, n_l) per hidden layer."""
        return [torch.arange(self.layers[li].n_out).expand(batch, -1).clone() for li in self.hidden]

    def gather_index(self, perms: list[torch.Tensor]) -> torch.Tensor:
        """(B, D) index such that ``permuted = weights.gather(1, index)``."""
        if len(perms) != len(self.hidden):
            raise ValueError(f"need {len(self.hidden)} permutations, got {len(perms)}")
        B = perms[0].shape[0] if perms else 1
        idx = torch.arange(self.tok.num_params).expand(B, -1).clone()
        for li, p in zip(self.hidden, perms, strict=True):
            cur, nxt = self.layers[li], self.layers[li + 1]
            n = cur.n_out
            p = p.long()
            # rows of layer l: (B, n, fan_in)
            w0, w1 = cur.weight_offset, cur.weight_offset + n * cur.fan_in
            blk = idx[:, w0:w1].reshape(B, n, cur.fan_in)
            idx[:, w0:w1] = blk.gather(1, p[:, :, None].expand(B, n, cur.fan_in)).reshape(B, -1)
            b0 = cur.bias_offset
            idx[:, b0:b0 + n] = idx[:, b0:b0 + n].gather(1, p)
            # input columns of layer l+1: (B, n_next, n, block)
            block = nxt.fan_in // n
            v0, v1 = nxt.weight_offset, nxt.weight_offset + nxt.n_out * nxt.fan_in
            blk = idx[:, v0:v1].reshape(B, nxt.n_out, n, block)
            pe = p[:, None, :, None].expand(B, nxt.n_out, n, block)
            idx[:, v0:v1] = blk.gather(2, pe).reshape(B, -1)
        return idx

    def apply(self, weights: torch.Tensor, perms: list[torch.Tensor]) -> torch.Tensor:
        """Permute (B, D) weight vectors with ``perms`` (one (B, n_l) tensor per hidden layer)."""
        return weights.gather(1, self.gather_index(perms).to(weights.device))

    def random(self, weights: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, D) weights, each row with its own random function-preserving permutation."""
        return self.apply(weights, self.random_perms(weights.shape[0], generator))


@dataclass
class AugmentConfig:
    """Augmentation strengths (noise in standardised token units)."""

    permute: bool = True
    noise: float = 0.05
    erase_prob: float = 0.1


def add_noise(tokens: torch.Tensor, mask: torch.Tensor, sigma: float,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """``tokens + sigma * N(0, 1)`` on real entries (``mask`` (T, W)); padding stays 0."""
    if sigma <= 0:
        return tokens
    noise = torch.randn(tokens.shape, generator=generator).to(tokens)
    return tokens + sigma * noise * mask.to(tokens)


def erase_tokens(tokens: torch.Tensor, prob: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero whole tokens of (B, T, W), each independently with probability ``prob``."""
    if prob <= 0:
        return tokens
    keep = torch.rand(tokens.shape[:-1], generator=generator) >= prob
    return tokens * keep[..., None].to(tokens)


def augmented_view(weights: torch.Tensor, tokenizer: Tokenizer, scaler: TokenScaler, permuter: Permuter,
                   cfg: AugmentConfig, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """One view of (B, D) weights: returns ``(view, target)``, both (B, T, W) standardised tokens.

    ``target`` is the (permuted) clean tokens the decoder should reconstruct from ``view``.
    """
    w = permuter.random(weights, generator) if cfg.permute else weights
    target = scaler.transform(tokenizer.tokenize(w))
    view = add_noise(target, tokenizer.mask, cfg.noise, generator)
    view = erase_tokens(view, cfg.erase_prob, generator)
    return view, target


def two_views(weights: torch.Tensor, tokenizer: Tokenizer, scaler: TokenScaler, permuter: Permuter,
              cfg: AugmentConfig, generator: torch.Generator | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two independent views of a batch: ``(view1, target1, view2, target2)``, each (B, T, W)."""
    v1, t1 = augmented_view(weights, tokenizer, scaler, permuter, cfg, generator)
    v2, t2 = augmented_view(weights, tokenizer, scaler, permuter, cfg, generator)
    return v1, t1, v2, t2
