"""Self-supervised losses (each tested against a slow literal transcription in ``tests/ssl``).

NT-Xent (Chen et al. 2020; the cross-modal form is Dual-SimCLR, Scheibenreif et al. 2022). For ``N``
pairs ``(a_k, b_k)`` stack the ``2N`` L2-normalised projections ``z`` and let ``sim`` be the dot product:

    l(i, j) = -log  exp(sim(z_i, z_j) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau)
    L       = 1 / (2N) sum_k [ l(a_k, b_k) + l(b_k, a_k) ]

In SimCLR ``a`` and ``b`` are two augmented views; in Dual-SimCLR they are the same location seen by
two modalities (two encoders), so no augmentation is needed. With ``gather=True`` the candidates
``z_k`` come from the *global* batch of every process (gradients flow back to their owners), so
``W`` processes with local batch ``n`` compute exactly the loss of one process with batch ``W * n``.

Why not lightly's ``NTXentLoss``: it is the same formula for two views (a test checks equality), but
Dual-SimCLR with three or more modalities needs every pair of views, and the pretraining monitor and
the DDP test need the number of candidates actually used (``last_num_candidates``).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import torch
import torch.nn.functional as F
from torch import nn

from eoreps.errors import ConfigError
from eoreps.ssl import dist


def nt_xent(
    a: torch.Tensor, b: torch.Tensor, temperature: float = 0.1, gather: bool = True
) -> tuple[torch.Tensor, int]:
    """NT-Xent of ``N`` positive pairs over the ``2N`` projections (see the module docstring).

    Args:
        a, b: ``(n, D)`` projections of the local batch (rows of ``a`` and ``b`` are positives).
        temperature: ``tau``.
        gather: use the global batch of all processes as candidates (no-op in a single process).

    Returns:
        ``(loss, num_candidates)``: the mean loss over the ``2n`` local anchors (a scalar) and the number
        of candidates in each softmax denominator (``2 * W * n - 1``).
    """
    if a.shape != b.shape or a.ndim != 2:
        raise ConfigError(
            f"nt_xent needs two (N, D) tensors of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    n = a.shape[0]
    a = F.normalize(a.float(), dim=1)
    b = F.normalize(b.float(), dim=1)
    if gather and dist.is_distributed():
        big_a, big_b, offset = dist.gather(a), dist.gather(b), dist.rank() * n
    else:
        big_a, big_b, offset = a, b, 0
    total = big_a.shape[0]
    anchors = torch.cat([a, b], dim=0)  # (2n, D)
    candidates = torch.cat([big_a, big_b], dim=0)  # (2N, D)
    logits = anchors @ candidates.T / temperature  # (2n, 2N)
    rows = torch.arange(n, device=a.device)
    own = torch.cat([rows + offset, rows + offset + total])  # column of each anchor itself
    pos = torch.cat([rows + offset + total, rows + offset])  # column of its positive
    logits[torch.arange(2 * n, device=a.device), own] = float("-inf")
    return F.cross_entropy(logits, pos), 2 * total - 1


class NTXent(nn.Module):
    """NT-Xent over two or more views: the mean of :func:`nt_xent` over every pair of views.

    With two views this is SimCLR's loss (or Dual-SimCLR's with two modalities); with ``V`` modalities
    each pair ``(i, j)`` contributes one cross-modal NT-Xent.

    Args:
        temperature: ``tau`` (0.1 -- 0.5 is usual; smaller values sharpen the softmax).
        gather: gather candidates across processes (DDP); harmless in one process.

    Attributes:
        last_num_candidates: candidates per softmax denominator in the last call (``2 * W * n - 1``).
    """

    def __init__(self, temperature: float = 0.1, gather: bool = True) -> None:
        super().__init__()
        self.temperature = float(temperature)
        self.gather = gather
        self.last_num_candidates = 0

    def forward(self, views: Sequence[torch.Tensor]) -> torch.Tensor:
        """``views``: ``V >= 2`` tensors ``(n, D)`` -> scalar loss."""
        if len(views) < 2:
            raise ConfigError(f"NT-Xent needs at least two views, got {len(views)}")
        losses = []
        for i, j in combinations(range(len(views)), 2):
            loss, self.last_num_candidates = nt_xent(views[i], views[j], self.temperature, self.gather)
            losses.append(loss)
        return torch.stack(losses).mean()


def triplet_loss(
    anchor: torch.Tensor, neighbor: torch.Tensor, distant: torch.Tensor, margin: float = 1.0
) -> torch.Tensor:
    """Tile2Vec's triplet loss ``mean_k [ ||f(a) - f(n)||_2 - ||f(a) - f(d)||_2 + m ]_+`` (Jean et al. 2019).

    Args:
        anchor, neighbor, distant: ``(N, D)`` embeddings.
        margin: ``m``.

    Uses ``torch.nn.functional.triplet_margin_loss`` (which adds ``eps = 1e-6`` inside the norms so the
    gradient stays finite when two embeddings coincide).
    """
    return F.triplet_margin_loss(anchor, neighbor, distant, margin=margin, p=2.0, eps=1e-6, reduction="mean")


def mae_loss(
    pred: torch.Tensor, target: torch.Tensor, norm_pix: bool = True, eps: float = 1e-6
) -> torch.Tensor:
    """MAE reconstruction loss on the masked patches (He et al. 2022).

    Args:
        pred: ``(B, M, P)`` predicted pixels of the ``M`` masked patches (``P = p * p * C`` values each).
        target: ``(B, M, P)`` true pixels of the same patches.
        norm_pix: normalise every target patch by its own mean and variance
            (``(t - mean) / sqrt(var + eps)``).

    Returns:
        mean over masked patches of the per-patch mean squared error.
    """
    if pred.shape != target.shape:
        raise ConfigError(f"mae_loss: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    target = target.float()
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True, unbiased=False)
        target = (target - mean) / (var + eps).sqrt()
    return ((pred.float() - target) ** 2).mean()
