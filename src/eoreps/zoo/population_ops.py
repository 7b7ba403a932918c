"""Vectorized forward pass of P zoo members of one architecture (any mix of activations).

Why hand-written: ``torch.func.vmap`` over 256 of these tiny CNNs reaches only ~2x the speed of a
one-at-a-time loop on this CPU (see ``docs/zoo.md``). Here the P members are *folded into channels*:
member p's conv channels are ``p*C .. p*C+C-1`` of one grouped convolution (``groups=P``) in
channels-last layout, so one oneDNN call serves the whole population; after the flatten the
activations are ``(P, B, F)`` and linear layers are one batched GEMM (``baddbmm``).

Input layouts (B images per member, C channels):

* conv-first architectures, own data per member: ``(B, P*C, H, W)`` channels-last (see
  :func:`gather_images`);
* conv-first, one batch shared by all members (evaluation, ``data_order='shared'``): ``(B, C, H, W)``;
  the first convolution is then an ordinary (ungrouped) convolution with ``P*Cout`` output channels;
* flatten-first (``mlp``): ``(P, B, D)`` or shared ``(B, D)``.

Output: logits ``(P, B, K)``.

Activations: one name for all members, or one name per member. Members with the same activation
should be contiguous (the chunker sorts them so); each run of equal names is one slice of the member
axis, so a chunk of four activations costs four activation kernels per layer instead of four chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from eoreps.zoo.architectures import ACTIVATIONS, Arch


def activation_runs(activation: str | Sequence[str], P: int) -> list[tuple[int, int, Callable]]:
    """``[(start, end, fn)]``: maximal runs of members ``start..end-1`` sharing one activation function."""
    if isinstance(activation, str):
        return [(0, P, ACTIVATIONS[activation])]
    names = list(activation)
    if len(names) != P:
        raise ValueError(f"{len(names)} activations given for {P} members")
    runs: list[tuple[int, int, Callable]] = []
    start = 0
    for i in range(1, P + 1):
        if i == P or names[i] != names[start]:
            runs.append((start, i, ACTIVATIONS[names[start]]))
            start = i
    return runs


def _apply_activation(h: torch.Tensor, runs: list[tuple[int, int, Callable]], P: int) -> torch.Tensor:
    """Each run's activation on its members' slice: channels ``(B, P*C, H, W)`` or members ``(P, B, F)``."""
    if len(runs) == 1:
        return runs[0][2](h)
    if h.dim() == 4:  # member p owns channels p*C .. p*C+C-1
        c = h.shape[1] // P
        return torch.cat([fn(h[:, s * c:e * c]) for s, e, fn in runs], dim=1)
    return torch.cat([fn(h[s:e]) for s, e, fn in runs], dim=0)


def gather_images(x_nhwc: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Member-specific batches in the population layout.

    ``x_nhwc``: the data set as (N, H, W, C); ``idx``: (P, B) int64 sample indices per member.
    Returns (B, P*C, H, W) with channels-last memory (one gather, one copy).
    """
    n, h, w, c = x_nhwc.shape
    p, b = idx.shape
    xs = x_nhwc.index_select(0, idx.t().reshape(-1)).view(b, p, h, w, c)
    xs = xs.permute(0, 2, 3, 1, 4).contiguous().view(b, h, w, p * c)
    return xs.permute(0, 3, 1, 2)


def gather_vectors(x_flat: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Member-specific batches for flatten-first architectures: (N, D), (P, B) -> (P, B, D)."""
    p, b = idx.shape
    return x_flat.index_select(0, idx.reshape(-1)).view(p, b, -1)


def _dropout(h: torch.Tensor, keep_scale: torch.Tensor, p: torch.Tensor, generator: torch.Generator,
             channel_dim: int) -> torch.Tensor:
    """Per-member inverted dropout; ``p``/``keep_scale`` are broadcastable along ``channel_dim``."""
    u = torch.rand(h.shape, generator=generator, dtype=h.dtype)
    if channel_dim == 1 and h.dim() == 4:
        u = u.contiguous(memory_format=torch.channels_last) if h.is_contiguous(
            memory_format=torch.channels_last) else u
    return h * ((u >= p.to(h.dtype)) * keep_scale.to(h.dtype))


def population_forward(
    arch: Arch,
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    activation: str | Sequence[str],
    *,
    shared: bool,
    dropout: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Logits (P, B, K) of the P members whose stacked parameters are ``params``.

    ``params[key]`` has shape ``(P, *shape)`` for every key of :meth:`Arch.param_shapes`.
    ``x`` follows the layouts in the module docstring; ``shared`` says whether one batch feeds all
    members. ``activation``: one name, or one per member (see the module docstring).
    ``dropout``: (P,) drop probabilities (training mode when given, with ``generator``);
    ``None`` means evaluation (no dropout).
    """
    first_key = next(iter(params))
    P = params[first_key].shape[0]
    runs = activation_runs(activation, P)
    use_drop = dropout is not None and bool((dropout > 0).any())
    if use_drop:
        assert dropout is not None and generator is not None
        keep_scale = 1.0 / (1.0 - dropout)
    h = x
    is_shared = shared
    for op in arch.ops:
        if op.kind == "conv":
            w = params[f"{op.name}.weight"].reshape(P * op.cout, op.cin, op.k, op.k)
            b = params[f"{op.name}.bias"].reshape(P * op.cout)
            h = F.conv2d(h, w, b, groups=1 if is_shared else P)
            if is_shared:
                # a 1-channel input is both NCHW and channels-last, and oneDNN then answers in NCHW, where
                # max-pooling P*C planes is ~10x slower than channels-last (one copy is cheaper)
                h = h.contiguous(memory_format=torch.channels_last)
            is_shared = False
        elif op.kind == "pool":
            h = F.max_pool2d(h, op.k)
        elif op.kind == "act":
            h = _apply_activation(h, runs, P)
            if use_drop:
                if h.dim() == 4:  # (B, P*C, H, W): member of channel c is c // C
                    c = h.shape[1] // P
                    pc = dropout.repeat_interleave(c).view(1, -1, 1, 1)  # type: ignore[union-attr]
                    sc = keep_scale.repeat_interleave(c).view(1, -1, 1, 1)
                    h = _dropout(h, sc, pc, generator, 1)  # type: ignore[arg-type]
                else:  # (P, B, F)
                    h = _dropout(h, keep_scale.view(P, 1, 1), dropout.view(P, 1, 1), generator, 0)  # type: ignore
        elif op.kind == "flatten":
            if h.dim() == 4:
                bsz = h.shape[0]
                if is_shared:  # only possible when flatten comes first on image input
                    h = h.reshape(bsz, -1)
                else:
                    # (B, P*C, H, W) -> per member (C, H, W) flattened in NCHW order -> (P, B, F)
                    h = h.contiguous().reshape(bsz, P, -1).transpose(0, 1)
        elif op.kind == "linear":
            w = params[f"{op.name}.weight"]  # (P, out, in)
            b = params[f"{op.name}.bias"]  # (P, out)
            if is_shared:  # (B, D) shared: one GEMM against all members' stacked weights
                bsz = h.shape[0]
                h = (
                    F.linear(h, w.reshape(P * op.cout, op.cin), b.reshape(-1))
                    .view(bsz, P, op.cout)
                    .transpose(0, 1)
                )
                is_shared = False
            else:
                h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
    return h
