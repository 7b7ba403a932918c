"""Jigsaw puzzles (Noroozi & Favaro 2016): which permutation shuffled the 3 x 3 tiles of an image?

Per image: a random ``3c x 3c`` square (``c = min(H, W) // 3``; a 32 x 32 patch gives ``c = 10``, the
2 px that do not divide by 3 are cropped away at a random offset) is cut into a 3 x 3 grid of cells;
from every cell a ``t x t`` tile (``t = int(tile_fraction * c)``, 7 px by default) is taken at a random
position inside the cell, so neighbouring tiles are separated by a random gap and continuous edges
do not give the answer away. The nine tiles are shuffled by one of ``P`` fixed permutations; each tile
is encoded by the shared backbone (a Siamese "context-free network"), the nine pooled feature vectors
are concatenated in shuffled order and an MLP predicts the permutation's index (cross-entropy).

The permutation set is chosen once, deterministically from ``permutation_seed``, by the paper's
maximal-Hamming-distance rule (:func:`select_permutations`); it is stored in the checkpoint's
hyper-parameters (``permutations``), so a restored run uses the same classes. Views: a random D4
flip/rotation of the whole image before tiling.

Tile size: the small CNNs encode 7 x 7 tiles natively (their pooled features are then computed from
a 1 x 1 deepest map). Backbones that need a fixed input size (timm ViTs) get their tiles upsampled
(bilinear) to ``tile_resize`` px, by default the training image size when a native-size forward fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from eoreps.errors import ConfigError
from eoreps.ssl.methods.base import Batch, SSLMethod
from eoreps.ssl.methods.registry import register_method


def all_permutations(n: int) -> np.ndarray:
    """Every permutation of ``range(n)``: ``(n!, n)`` uint8 (built by insertion, no Python loop per row)."""
    perms = np.zeros((1, 0), np.uint8)
    for k in range(n):  # insert value k at each position of every permutation of range(k)
        m = perms.shape[0]
        out = np.empty((m * (k + 1), k + 1), np.uint8)
        for pos in range(k + 1):
            block = out[pos * m:(pos + 1) * m]
            block[:, :pos], block[:, pos], block[:, pos + 1:] = perms[:, :pos], k, perms[:, pos:]
        perms = out
    return perms


@lru_cache(maxsize=8)
def select_permutations(num: int, n: int = 9, seed: int = 0) -> tuple[tuple[int, ...], ...]:
    """``num`` permutations of ``range(n)`` with maximal Hamming distance (Noroozi & Favaro 2016, Alg. 1).

    Greedy: start from a random permutation; then repeatedly add the permutation whose smallest
    Hamming distance to those already chosen is largest (ties broken at random). Deterministic in
    ``seed``. With ``n = 9``: 24 permutations are at least 7 positions apart, 100 at least 6 (mean 8.1).
    """
    perms = all_permutations(n)
    if not 2 <= num <= len(perms):
        raise ConfigError(f"num_permutations must be in [2, {len(perms)}], got {num}")
    rng = np.random.default_rng(seed)
    cols = [np.ascontiguousarray(perms[:, i]) for i in range(n)]
    dmin = np.full(len(perms), n + 1, np.int8)  # smallest distance of each candidate to the chosen ones
    chosen = [int(rng.integers(len(perms)))]
    for _ in range(num - 1):
        last = perms[chosen[-1]]
        matches = np.zeros(len(perms), np.int8)
        for i in range(n):
            matches += cols[i] == last[i]
        np.minimum(dmin, n - matches, out=dmin)
        best = np.flatnonzero(dmin == dmin.max())
        chosen.append(int(best[rng.integers(len(best))]))
    return tuple(tuple(int(v) for v in perms[j]) for j in chosen)


def min_hamming(perms: torch.Tensor) -> int:
    """Smallest Hamming distance between two rows of ``perms`` ``(P, n)``."""
    d = (perms[:, None, :] != perms[None, :, :]).sum(-1)
    d.fill_diagonal_(perms.shape[1] + 1)
    return int(d.min())


def cut_tiles(
    x: torch.Tensor, grid: int, tile: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A ``grid x grid`` puzzle per image: tiles at random positions inside their cells.

    Args:
        x: ``(B, C, H, W)`` images.
        grid: tiles per side.
        tile: tile side ``t`` (at most the cell side ``c = min(H, W) // grid``).
        generator: random source of the crop offset and the per-tile jitter (CPU).

    Returns:
        ``(B, grid * grid, C, t, t)`` tiles in row-major cell order.
    """
    b, c_in, h, w = x.shape
    cell = min(h, w) // grid
    if not 1 <= tile <= cell:
        raise ConfigError(
            f"tile size {tile} must be in [1, {cell}] for {h}x{w} images and a {grid}x{grid} grid"
        )
    n = grid * grid
    oy = torch.randint(0, h - grid * cell + 1, (b, 1), generator=generator)
    ox = torch.randint(0, w - grid * cell + 1, (b, 1), generator=generator)
    jy = torch.randint(0, cell - tile + 1, (b, n), generator=generator)
    jx = torch.randint(0, cell - tile + 1, (b, n), generator=generator)
    pos = torch.arange(n)
    top = oy + (pos // grid) * cell + jy  # (B, n)
    left = ox + (pos % grid) * cell + jx
    ar = torch.arange(tile)
    rows = (top[..., None] + ar).to(x.device)[:, :, None, :, None]  # (B, n, 1, t, 1)
    cols = (left[..., None] + ar).to(x.device)[:, :, None, None, :]  # (B, n, 1, 1, t)
    bi = torch.arange(b, device=x.device)[:, None, None, None, None]
    ci = torch.arange(c_in, device=x.device)[None, None, :, None, None]
    return x[bi, ci, rows, cols]


def assemble(tiles: torch.Tensor, grid: int) -> torch.Tensor:
    """Inverse of the cutting layout: ``(B, grid * grid, C, t, t)`` -> ``(B, C, grid * t, grid * t)``."""
    b, n, c, t, _ = tiles.shape
    x = tiles.reshape(b, grid, grid, c, t, t).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, grid * t, grid * t)


@register_method("jigsaw")
class Jigsaw(SSLMethod):
    """Jigsaw puzzle solving.

    Args:
        grid: tiles per side (3 in the paper).
        num_permutations: permutation classes ``P`` (100 by default; the paper used 1000 on ImageNet).
        permutation_seed: seed of the permutation selection.
        permutations: explicit permutation set (``P`` lists of ``grid**2`` indices); set automatically
            from the two options above and stored in the checkpoint.
        tile_fraction: tile side as a share of the cell side (the rest is the jitter / gap).
        tile_resize: upsample tiles to this size before encoding (``None``: native size when the
            backbone accepts it, else the training image size).
        hidden: hidden width of the MLP over the concatenated tile features.
        **kwargs: see :class:`~eoreps.ssl.methods.base.SSLMethod`.
    """


    def __init__(self, grid: int = 3, num_permutations: int = 100, permutation_seed: int = 0,
                 permutations: Sequence[Sequence[int]] | None = None, tile_fraction: float = 0.75,
                 tile_resize: int | None = None, hidden: int = 512, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if grid < 2:
            raise ConfigError(f"grid must be >= 2, got {grid}")
        cell = min(self.image_size) // grid
        if cell < 2:
            raise ConfigError(
                f"{self.image_size} images are too small for a {grid}x{grid} jigsaw; lower grid"
            )
        if not 0 < tile_fraction <= 1:
            raise ConfigError(f"tile_fraction must be in (0, 1], got {tile_fraction}")
        if hidden < 1:
            raise ConfigError(f"hidden must be >= 1, got {hidden}")
        if permutations is None:
            permutations = select_permutations(int(num_permutations), grid * grid, int(permutation_seed))
            self.hparams["permutations"] = [list(p) for p in permutations]
        perms = torch.as_tensor([list(p) for p in permutations], dtype=torch.long)
        if (
            perms.ndim != 2
            or perms.shape[1] != grid * grid
            or len(perms) < 2
            or not (perms.sort(1).values == torch.arange(grid * grid)).all()
            or len(perms.unique(dim=0)) != len(perms)
        ):
            raise ConfigError(f"permutations must be >= 2 distinct permutations of range({grid * grid})")
        self.register_buffer("permutations", perms, persistent=False)
        self.grid, self.cell = grid, cell
        self.tile = max(1, int(tile_fraction * cell))
        self.tile_resize = tile_resize if tile_resize is not None else self._default_resize()
        self.hparams["tile_resize"] = self.tile_resize
        from eoreps.models.heads import MLPHead
        from eoreps.transforms import RandomFlipRotate

        self.head = MLPHead(grid * grid * self.encoder.num_features, len(perms), hidden=hidden)
        self.augment = RandomFlipRotate(rotate=self.image_size[0] == self.image_size[1])

    def _default_resize(self) -> int | None:
        """``None`` when the backbone encodes native-size tiles, else the training image size."""
        was_training = self.encoder.training
        chans = sum(self.in_chans[m] for m in self.modalities)
        try:
            with torch.no_grad():
                self.encoder.eval()(torch.zeros(2, chans, self.tile, self.tile))
            return None
        except Exception:  # a fixed-size backbone (e.g. a ViT with img_size): upsample the tiles
            return min(self.image_size)
        finally:
            self.encoder.train(was_training)

    def make_views(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Shuffled tiles ``(B, n, C, t, t)`` (``n = grid**2``) and permutation labels ``(B,)``."""
        x = self.stack(self.augment({m: batch[m] for m in self.modalities}))
        tiles = cut_tiles(x, self.grid, self.tile)
        labels = torch.randint(0, len(self.permutations), (x.shape[0],)).to(x.device)
        order = self.permutations[labels]  # (B, n): shuffled position i shows tile order[i]
        shuffled = torch.take_along_dim(tiles, order[:, :, None, None, None], dim=1)
        return shuffled, labels

    def loss(self, views: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        tiles, labels = views
        b, n = tiles.shape[:2]
        flat = tiles.flatten(0, 1)  # (B n, C, t, t)
        if self.tile_resize is not None:
            flat = F.interpolate(flat, size=(self.tile_resize,) * 2, mode="bilinear", align_corners=False)
        feats = self.encoder(flat).reshape(b, n * self.encoder.num_features)
        logits = self.head(feats)  # (B, P)
        loss = F.cross_entropy(logits, labels)
        return loss, {"jigsaw_acc": (logits.detach().argmax(1) == labels).float().mean()}
