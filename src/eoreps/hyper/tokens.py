"""Tokenization of zoo weights: one token per output neuron / convolution kernel.

A token of layer ``l`` and output unit ``i`` holds the unit's incoming weights (``W_l[i]`` flattened:
``cin * k * k`` values for a convolution kernel, ``cin`` for a linear neuron) followed by its bias, and is
zero-padded to the common width ``W = max_l (fan_in_l + 1)``. A boolean mask marks the real entries and
every token carries its position ``(layer index, index in layer)``.

For ``cnn_s`` (2,464 parameters) this gives 48 tokens (8 + 6 + 4 + 20 + 10) of width 201 (conv2:
8 * 5 * 5 + 1). The map is a fixed gather, so ``detokenize(tokenize(w)) == w`` exactly.

:class:`TokenScaler` standardises tokens per layer (weights and biases separately) with statistics of
the training models, so that layers of very different scales weigh alike in the reconstruction loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from eoreps.errors import DataError

ParamOrder = list[tuple[str, tuple[int, ...]]]


@dataclass(frozen=True)
class LayerSpec:
    """One parameterised layer: ``n_out`` tokens of ``fan_in`` weights + 1 bias.

    ``weight_offset`` / ``bias_offset``: start of the layer's weight / bias block in the flat vector;
    ``weight_shape``: (cout, cin, k, k) for a convolution, (cout, cin) for a linear layer.
    """

    name: str
    weight_shape: tuple[int, ...]
    weight_offset: int
    bias_offset: int

    @property
    def n_out(self) -> int:
        return int(self.weight_shape[0])

    @property
    def fan_in(self) -> int:
        return int(math.prod(self.weight_shape[1:]))

    @property
    def is_conv(self) -> bool:
        return len(self.weight_shape) == 4


def layer_specs(param_order: ParamOrder) -> list[LayerSpec]:
    """Group ``[(key, shape), ...]`` (state_dict order, weight before bias) into layers.

    Raises :class:`DataError` if a layer lacks its bias or the shapes disagree.
    """
    specs: list[LayerSpec] = []
    offset = 0
    pending: tuple[str, tuple[int, ...], int] | None = None
    for key, shape in param_order:
        shape = tuple(int(s) for s in shape)
        n = math.prod(shape)
        if key.endswith(".weight"):
            if pending is not None:
                raise DataError(
                    f"parameter order: layer '{pending[0]}' has no bias; hyper-representations need "
                    f"weight+bias per layer"
                )
            if len(shape) not in (2, 4):
                raise DataError(
                    f"parameter order: '{key}' has shape {shape}; only conv (4-D) and linear (2-D) "
                    f"layers can be tokenized"
                )
            pending = (key[: -len(".weight")], shape, offset)
        elif key.endswith(".bias"):
            name = key[: -len(".bias")]
            if pending is None or pending[0] != name or shape != (pending[1][0],):
                raise DataError(f"parameter order: bias '{key}' {shape} does not follow its weight; the zoo "
                                f"manifest's param_order is corrupt")
            specs.append(LayerSpec(name, pending[1], pending[2], offset))
            pending = None
        else:
            raise DataError(f"parameter order: '{key}' is neither a weight nor a bias")
        offset += n
    if pending is not None:
        raise DataError(f"parameter order: layer '{pending[0]}' has no bias")
    if not specs:
        raise DataError("parameter order is empty; the zoo manifest has no parameters")
    return specs


class Tokenizer:
    """Flat weight vectors (..., D) <-> tokens (..., T, W), with mask (T, W) and positions (T, 2).

    Build from a zoo's ``param_order`` (``ModelZoo.param_order``) or an architecture
    (``Tokenizer.from_arch(arch)``).
    """

    def __init__(self, param_order: ParamOrder) -> None:
        self.param_order: ParamOrder = [(str(k), tuple(int(v) for v in s)) for k, s in param_order]
        self.layers = layer_specs(self.param_order)
        self.num_params = sum(math.prod(s) for _, s in self.param_order)
        self.width = max(sp.fan_in + 1 for sp in self.layers)
        self.n_tokens = sum(sp.n_out for sp in self.layers)
        index = torch.zeros(self.n_tokens, self.width, dtype=torch.long)
        mask = torch.zeros(self.n_tokens, self.width, dtype=torch.bool)
        is_bias = torch.zeros(self.n_tokens, self.width, dtype=torch.bool)
        pos = torch.zeros(self.n_tokens, 2, dtype=torch.long)
        t = 0
        for li, sp in enumerate(self.layers):
            for i in range(sp.n_out):
                start = sp.weight_offset + i * sp.fan_in
                index[t, : sp.fan_in] = torch.arange(start, start + sp.fan_in)
                index[t, sp.fan_in] = sp.bias_offset + i
                mask[t, : sp.fan_in + 1] = True
                is_bias[t, sp.fan_in] = True
                pos[t] = torch.tensor([li, i])
                t += 1
        self.index, self.mask, self.is_bias, self.positions = index, mask, is_bias, pos
        # token -> layer id, for per-layer statistics
        self.token_layer = pos[:, 0].clone()

    @classmethod
    def from_arch(cls, arch: Any) -> Tokenizer:
        """Tokenizer of an :class:`eoreps.zoo.architectures.Arch`."""
        return cls(arch.param_shapes())

    @property
    def n_layers(self) -> int:
        """Number of parameterised layers."""
        return len(self.layers)

    @property
    def max_units(self) -> int:
        """Largest number of tokens in one layer (size of the within-layer position table)."""
        return max(sp.n_out for sp in self.layers)

    def tokenize(self, weights: torch.Tensor) -> torch.Tensor:
        """(..., D) weights -> (..., T, W) tokens (padding entries are 0)."""
        if weights.shape[-1] != self.num_params:
            raise DataError(f"weight vectors have {weights.shape[-1]} values, the tokenizer expects "
                            f"{self.num_params}; the representation was trained on another architecture")
        flat = weights[..., self.index.reshape(-1)].reshape(*weights.shape[:-1], self.n_tokens, self.width)
        return flat * self.mask.to(flat.dtype)

    def detokenize(self, tokens: torch.Tensor) -> torch.Tensor:
        """(..., T, W) tokens -> (..., D) weights (padding entries are ignored)."""
        lead = tokens.shape[:-2]
        out = tokens.new_zeros(*lead, self.num_params)
        out[..., self.index[self.mask]] = tokens[..., self.mask]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (rebuild with ``Tokenizer(d['param_order'])``)."""
        return {"param_order": [[k, list(s)] for k, s in self.param_order]}


class TokenScaler:
    """Per-layer standardisation of tokens: weights and biases of layer ``l`` get their own mean and
    standard deviation (fitted on training tokens); padding stays 0.

    ``mean``, ``std``: (T, W) tensors broadcast over the batch.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, mask: torch.Tensor) -> None:
        self.mean, self.std, self.mask = mean, std, mask

    @classmethod
    def fit(cls, tokenizer: Tokenizer, weights: torch.Tensor) -> TokenScaler:
        """Fit on (N, D) training weights."""
        tok = tokenizer.tokenize(weights.float())  # (N, T, W)
        mean = torch.zeros(tokenizer.n_tokens, tokenizer.width)
        std = torch.ones(tokenizer.n_tokens, tokenizer.width)
        for li in range(tokenizer.n_layers):
            rows = tokenizer.token_layer == li
            for part in (tokenizer.is_bias, tokenizer.mask & ~tokenizer.is_bias):
                sel = part & rows[:, None]  # (T, W)
                vals = tok[:, sel]
                m = vals.mean()
                s = vals.std() if vals.numel() > 1 else torch.tensor(1.0)
                s = s if torch.isfinite(s) and s > 1e-8 else torch.tensor(1.0)
                mean[sel], std[sel] = m, s
        return cls(mean, std, tokenizer.mask)

    def transform(self, tokens: torch.Tensor) -> torch.Tensor:
        """Raw tokens (..., T, W) -> standardised tokens (padding 0)."""
        m = self.mask.to(tokens.dtype)
        return (tokens - self.mean.to(tokens)) / self.std.to(tokens) * m

    def inverse(self, tokens: torch.Tensor) -> torch.Tensor:
        """Standardised tokens -> raw tokens (padding 0)."""
        m = self.mask.to(tokens.dtype)
        return (tokens * self.std.to(tokens) + self.mean.to(tokens)) * m

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean.contiguous(), "std": self.std.contiguous()}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], tokenizer: Tokenizer) -> TokenScaler:
        return cls(state["mean"], state["std"], tokenizer.mask)
