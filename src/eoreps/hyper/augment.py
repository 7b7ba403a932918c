"""Augmentations of weight vectors for hyper-representation learning.

* **Permutation** of the hidden neurons / channels of every hidden layer: the rows (and biases) of
  layer ``l`` are permuted and the matching input columns of layer ``l + 1`` follow, so the network
  computes exactly the same function (element-wise activations, max-pooling and channel-major flatten
  all commute with a channel permutation). The output layer is never permuted.
* **Additive Gaussian noise** on the (standardised) tokens.
* **Random erasing**: each token is set to zero with a given probability.

:func:`two_views` draws two independently augmented views of a batch. The reconstruction target is, by
default, each view's own permuted clean tokens (``target="view"``, as in the paper). The alternative
``target="canonical"`` is the clean model in **canonical form**, the hidden units of every layer sorted
by a permutation-invariant key (the squared norm of the unit's incoming weights plus its squared bias),
so every permuted view of a model shares one target; ``canonical_input`` also feeds the encoder the
canonical form. Measured on the digits zoo (docs/hyper.md), neither lowered the reconstruction loss nor
helped the property probes, so they are options, not defaults.

Permutations are applied as one batched gather on the flat weight vector (index tensor (B, D)), which
keeps them exact: weights are moved, never recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from eoreps.errors import ConfigError, DataError
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

    def canonical_perms(self, weights: torch.Tensor) -> list[torch.Tensor]:
        """Per hidden layer, the (B, n_l) order that sorts its units by ``|w_in|^2 + b^2`` (ascending).

        The key of a unit does not change when any layer is permuted (a permutation of the previous layer
        only reorders the unit's incoming weights), so permuted copies of a model share one canonical form.
        """
        perms = []
        for li in self.hidden:
            sp = self.layers[li]
            rows = weights[:, sp.weight_offset : sp.weight_offset + sp.n_out * sp.fan_in].reshape(
                -1, sp.n_out, sp.fan_in
            )
            bias = weights[:, sp.bias_offset: sp.bias_offset + sp.n_out]
            key = rows.double().pow(2).sum(-1) + bias.double().pow(2)  # (B, n_l), float64: fewer exact ties
            perms.append(torch.argsort(key, dim=1, stable=True))
        return perms

    def canonical(self, weights: torch.Tensor) -> torch.Tensor:
        """(B, D) weights with every hidden layer's units in canonical order (same function)."""
        return self.apply(weights, self.canonical_perms(weights))

    def apply(self, weights: torch.Tensor, perms: list[torch.Tensor]) -> torch.Tensor:
        """Permute (B, D) weight vectors with ``perms`` (one (B, n_l) tensor per hidden layer)."""
        return weights.gather(1, self.gather_index(perms).to(weights.device))

    def random(self, weights: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, D) weights, each row with its own random function-preserving permutation."""
        return self.apply(weights, self.random_perms(weights.shape[0], generator))


TARGETS = ("canonical", "view")


@dataclass
class AugmentConfig:
    """Augmentation strengths (noise in standardised token units) and the reconstruction target.

    ``target``: ``"view"`` (each view's own permuted clean tokens) or ``"canonical"`` (the clean model
    with its hidden units in canonical order, the same for every view). ``canonical_input``: the encoder
    sees every model in canonical order (views are canonicalised after permuting, so the embedding is
    exactly permutation invariant by construction and the permutation augmentation has no effect left).
    ``align``: every model is permuted once, before training, to match a reference model of the zoo
    (weight matching, :mod:`eoreps.hyper.align`); encoder input and reconstruction target are the
    matched model, so views differ only by noise and erasing (a random permutation would undo the
    matching). This is the setting for generating weights (``hyper sample``): decoded weights then lie
    in one consistent unit order.
    """

    permute: bool = True
    noise: float = 0.05
    erase_prob: float = 0.1
    target: str = "view"
    canonical_input: bool = False
    align: bool = False

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(
                f"reconstruction target '{self.target}' is unknown: use one of {', '.join(TARGETS)}"
            )
        if self.noise < 0:
            raise ConfigError(f"noise={self.noise} must be >= 0")
        if not 0.0 <= self.erase_prob < 1.0:
            raise ConfigError(f"erase_prob={self.erase_prob} must lie in [0, 1)")
        if self.align and (self.permute or self.target != "view" or self.canonical_input):
            raise ConfigError(
                "align=True matches every model to one reference unit order; it cannot be combined with "
                "the permutation augmentation, target=canonical or canonical_input=True"
            )


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
                   cfg: AugmentConfig, generator: torch.Generator | None = None,
                   canonical: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One view of (B, D) weights: returns ``(view, target)``, both (B, T, W) standardised tokens.

    ``target`` is what the decoder should reconstruct from ``view``: the canonical clean tokens
    (``cfg.target == "canonical"``; pass them as ``canonical`` to avoid recomputing) or the view's own
    permuted clean tokens (``"view"``).
    """
    w = permuter.random(weights, generator) if cfg.permute else weights
    if cfg.canonical_input:
        w = permuter.canonical(w)
    clean = scaler.transform(tokenizer.tokenize(w))
    view = add_noise(clean, tokenizer.mask, cfg.noise, generator)
    view = erase_tokens(view, cfg.erase_prob, generator)
    if cfg.target == "view":
        return view, clean
    return view, canonical if canonical is not None else canonical_tokens(
        weights, tokenizer, scaler, permuter
    )


def canonical_tokens(weights: torch.Tensor, tokenizer: Tokenizer, scaler: TokenScaler, permuter: Permuter
                     ) -> torch.Tensor:
    """(B, D) weights -> (B, T, W) standardised tokens of their canonical form."""
    return scaler.transform(tokenizer.tokenize(permuter.canonical(weights)))


def two_views(weights: torch.Tensor, tokenizer: Tokenizer, scaler: TokenScaler, permuter: Permuter,
              cfg: AugmentConfig, generator: torch.Generator | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two independent views of a batch: ``(view1, target1, view2, target2)``, each (B, T, W)."""
    # one canonical target for both views (it does not depend on the view's permutation)
    canon = canonical_tokens(weights, tokenizer, scaler, permuter) if cfg.target == "canonical" else None
    v1, t1 = augmented_view(weights, tokenizer, scaler, permuter, cfg, generator, canon)
    v2, t2 = augmented_view(weights, tokenizer, scaler, permuter, cfg, generator, canon)
    return v1, t1, v2, t2
