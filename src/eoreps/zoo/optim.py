"""Stacked parameters and per-member optimizers for a population of P members.

All P members' parameters live in **one flat fp32 buffer**, one contiguous block ``(P, *shape)`` per
state_dict key (layer-major). Each block is exposed as a leaf ``nn.Parameter`` that shares the buffer's
storage, and each leaf's ``.grad`` is pre-assigned to the matching view of one flat gradient buffer:
autograd then accumulates every gradient in place into that buffer, and an optimizer step is a
handful of element-wise ops over two flat vectors, whatever the number of layers or members.

Per-member learning rate and weight decay are per-element vectors (each member's value repeated over
its parameters). The update rules are transcriptions of ``torch.optim.SGD`` (no momentum) and
``torch.optim.Adam`` (L2 weight decay added to the gradient, betas (0.9, 0.999), eps 1e-8), written
out here because ``torch.optim`` takes one scalar learning rate per parameter group, and a group per
member would cost P separate kernel launches per layer. ``tests/zoo/test_optim.py`` checks both
against ``torch.optim`` on single models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from eoreps.zoo.architectures import Arch


class StackedParams:
    """P members' parameters (flat buffer + leaf views) and their flat gradient buffer.

    ``init``: (P, D) float32, each row a member's weights in state_dict order.
    ``params[key]``: leaf ``nn.Parameter`` of shape (P, *shape), a view into ``flat``.
    """

    def __init__(self, arch: Arch, init: torch.Tensor) -> None:
        self.arch = arch
        self.shapes = arch.param_shapes()
        self.P = int(init.shape[0])
        total = self.P * sum(math.prod(s) for _, s in self.shapes)
        self.flat = torch.empty(total, dtype=torch.float32)
        self.grad = torch.zeros(total, dtype=torch.float32)
        self.params: dict[str, nn.Parameter] = {}
        self._blocks: list[tuple[str, int, int]] = []  # key, offset in flat, numel per member
        o = 0
        for key, shape in self.shapes:
            n = math.prod(shape)
            p = nn.Parameter(self.flat[o:o + self.P * n].view(self.P, *shape))
            p.grad = self.grad[o:o + self.P * n].view(self.P, *shape)
            self.params[key] = p
            self._blocks.append((key, o, n))
            o += self.P * n
        self.set_members(init)

    def reset_grad_views(self) -> None:
        """Re-attach ``.grad`` views (after anything that replaced them)."""
        for key, o, n in self._blocks:
            self.params[key].grad = self.grad[o:o + self.P * n].view(self.params[key].shape)

    def zero_grad(self) -> None:
        """Zero the flat gradient buffer (one memset)."""
        self.grad.zero_()

    def set_members(self, weights: torch.Tensor) -> None:
        """Load (P, D) member weights (state_dict order) into the flat buffer."""
        self.set_rows(self.flat, weights)

    def members(self) -> torch.Tensor:
        """(P, D) float32 copy of every member's weights in state_dict order."""
        return self.rows(self.flat)

    def rows(self, buf: torch.Tensor) -> torch.Tensor:
        """(P, D) copy of a buffer in the flat layout (weights, gradients, optimizer moments)."""
        return torch.cat([buf[o:o + self.P * n].view(self.P, n) for _k, o, n in self._blocks], dim=1)

    def set_rows(self, buf: torch.Tensor, rows: torch.Tensor) -> None:
        """Write (P, D) rows (state_dict order) into a buffer in the flat layout."""
        with torch.no_grad():
            c = 0
            for _key, o, n in self._blocks:
                buf[o:o + self.P * n].view(self.P, n).copy_(rows[:, c:c + n])
                c += n

    def per_element(self, values: torch.Tensor) -> torch.Tensor:
        """Expand a per-member (P,) vector to the flat layout (len(flat),)."""
        values = values.to(torch.float32)
        return torch.cat([values.repeat_interleave(n) for _k, _o, n in self._blocks])


class StackedOptimizer:
    """SGD or Adam over :class:`StackedParams` with per-member ``lr`` and ``weight_decay`` (P,).

    ``kind``: ``'sgd'`` or ``'adam'`` for every member, or a sequence of P kinds (a mixed population:
    both updates are computed and each member takes its own; Adam moments are kept for every member,
    which costs two extra flat buffers and leaves the SGD members' updates unchanged).
    """

    def __init__(
        self,
        stack: StackedParams,
        kind: str | Sequence[str],
        lr: torch.Tensor,
        weight_decay: torch.Tensor,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        kinds = [kind] if isinstance(kind, str) else list(kind)
        bad = sorted({k for k in kinds if k not in ("sgd", "adam")})
        if bad:
            raise ValueError(f"optimizer kind must be 'sgd' or 'adam', got {bad[0]!r}")
        if not isinstance(kind, str) and len(kinds) != stack.P:
            raise ValueError(f"{len(kinds)} optimizer kinds given for {stack.P} members")
        self.stack = stack
        self.kind = kinds[0] if len(set(kinds)) == 1 else "mixed"
        self.adam_mask = (
            stack.per_element(torch.tensor([k == "adam" for k in kinds], dtype=torch.float32)) > 0
            if self.kind == "mixed"
            else None
        )
        self.lr = stack.per_element(lr)
        self.wd = stack.per_element(weight_decay)
        self.has_wd = bool((weight_decay != 0).any())
        self.betas, self.eps = betas, eps
        self.step_count = 0
        if self.kind != "sgd":
            self.exp_avg = torch.zeros_like(stack.flat)
            self.exp_avg_sq = torch.zeros_like(stack.flat)

    @torch.no_grad()
    def step(self) -> None:
        """One update of every member from the gradients in ``stack.grad``."""
        p, g = self.stack.flat, self.stack.grad
        if self.has_wd:
            g = g.addcmul(self.wd, p)  # grad + wd * param (L2, as torch.optim)
        self.step_count += 1
        if self.kind == "sgd":
            p.addcmul_(self.lr, g, value=-1.0)
            return
        b1, b2 = self.betas
        self.exp_avg.lerp_(g, 1 - b1)
        self.exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)
        bc1 = 1 - b1 ** self.step_count
        bc2_sqrt = math.sqrt(1 - b2 ** self.step_count)
        denom = (self.exp_avg_sq.sqrt() / bc2_sqrt).add_(self.eps)
        if self.adam_mask is None:
            p.addcdiv_(self.exp_avg * self.lr, denom, value=-1.0 / bc1)
            return
        adam = torch.addcdiv(torch.zeros_like(p), self.exp_avg * self.lr, denom, value=-1.0 / bc1)
        p.add_(torch.where(self.adam_mask, adam, self.lr * g * -1.0))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors needed to resume (``step`` as a 0-d int64 tensor)."""
        out = {"step": torch.tensor(self.step_count, dtype=torch.int64)}
        if self.kind != "sgd":
            out |= {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore from :meth:`state_dict`."""
        self.step_count = int(state["step"])
        if self.kind != "sgd":
            self.exp_avg.copy_(state["exp_avg"])
            self.exp_avg_sq.copy_(state["exp_avg_sq"])
