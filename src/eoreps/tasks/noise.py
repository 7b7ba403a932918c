"""Label noise: corrupt a given fraction of the *training* labels, uniformly or class-dependently.

To measure robustness to cheap labels (``eoreps fit --label-noise 0.2 --noise-kind class``; the study's
``label_noise`` / ``noise_kind``). Validation and test labels are never touched. Everything is a function
of ``(seed, sample index)``, so a run is reproducible and a sample keeps its corruption across epochs.

A wrong class is drawn from a row of the transition matrix ``T`` (``(K, K)``, zero diagonal, rows sum
to 1; :func:`transition_matrix`):

* ``uniform`` -- any other class with equal probability, ``T[i, j] = 1 / (K - 1)``;
* ``class`` -- class-dependent: row ``i`` is a Dirichlet(0.3) draw over the other classes, seeded by the
  run seed, so each class is mostly confused with one or two fixed "similar" classes (as annotators
  confuse crops with grassland rather than with water).

What "a fraction ``f`` of the labels" means per target:

* single label (``label``): exactly ``round(f N)`` samples of the ``N`` get a different class (from ``T``);
* multi-label (``multilabel``, ``(K,)`` multi-hot): exactly ``round(f N K)`` of the ``N K`` label bits are
  chosen. ``uniform`` flips each chosen bit. ``class`` flips a chosen absent label on (a spurious tag)
  and moves a chosen present label ``k`` to a class ``j ~ T[k]`` (bit ``k`` off, bit ``j`` on: a confusion);
* segmentation (``mask``, ``(H, W)``): per region, not per pixel -- every connected region of one class
  (4-connectivity) is relabelled (to ``j ~ T[class]``) with probability ``f``, independently. Per-pixel
  noise would be salt-and-pepper that a convolutional network averages away; annotators mislabel whole
  parcels. The corrupted fraction of regions is ``f`` in expectation (not exactly). Ignored pixels stay.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from eoreps.data.datasets.base import IGNORE_INDEX
from eoreps.errors import ConfigError, unknown_name

NOISE_KINDS = ("uniform", "class")
#: label keys a :class:`LabelNoise` can corrupt
NOISY_KEYS = ("label", "multilabel", "mask")
_SALT = 0x6E6F6973  # separates the noise draws from other uses of the run seed


def check_noise(fraction: float, kind: str) -> None:
    """One-line :class:`ConfigError` for a fraction outside [0, 1) or an unknown kind."""
    if kind not in NOISE_KINDS:
        raise unknown_name("noise kind", kind, NOISE_KINDS)
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(
            f"label_noise={fraction} must be in [0, 1) (the fraction of training labels corrupted)"
        )


def transition_matrix(num_classes: int, kind: str = "uniform", seed: int = 0) -> np.ndarray:
    """``(K, K)`` float64 class-transition matrix: zero diagonal, rows sum to 1 (see the module docstring)."""
    if num_classes < 2:
        raise ConfigError(f"label noise needs >= 2 classes, got {num_classes}")
    k = num_classes
    if kind == "uniform":
        t = np.full((k, k), 1.0 / (k - 1))
    elif kind == "class":
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, _SALT, 1])
        t = np.zeros((k, k))
        for i in range(k):
            others = [j for j in range(k) if j != i]
            t[i, others] = rng.dirichlet(np.full(k - 1, 0.3))
    else:
        raise unknown_name("noise kind", kind, NOISE_KINDS)
    np.fill_diagonal(t, 0.0)
    return t / t.sum(1, keepdims=True)


class LabelNoise:
    """The corruption plan of a training set of ``n`` samples (which samples and bits, ``T``, seeds).

    Args:
        n: training samples.
        num_classes: classes ``K``.
        fraction: ``f`` in [0, 1).
        kind: ``uniform`` | ``class``.
        seed: run seed.
    """

    def __init__(
        self, n: int, num_classes: int, fraction: float, kind: str = "uniform", seed: int = 0
    ) -> None:
        check_noise(fraction, kind)
        self.n, self.k, self.fraction, self.kind, self.seed = (
            int(n),
            int(num_classes),
            float(fraction),
            kind,
            int(seed),
        )
        self.matrix = transition_matrix(self.k, kind, seed)
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, _SALT, 2])
        #: (n,) bool: the samples whose single label is corrupted (exactly round(f n))
        self.samples = np.zeros(self.n, dtype=bool)
        self.samples[rng.permutation(self.n)[: int(round(self.fraction * self.n))]] = True
        #: (n, K) bool: the multi-label positions chosen (exactly round(f n K))
        bits = np.zeros(self.n * self.k, dtype=bool)
        bits[rng.permutation(self.n * self.k)[: int(round(self.fraction * self.n * self.k))]] = True
        self.bits = bits.reshape(self.n, self.k)

    def _rng(self, index: int, what: int) -> np.random.Generator:
        return np.random.default_rng([self.seed & 0xFFFFFFFF, _SALT, 3 + what, int(index)])

    def _other(self, cls: int, rng: np.random.Generator) -> int:
        return int(rng.choice(self.k, p=self.matrix[cls]))

    def label(self, index: int, label: int) -> int:
        """The (possibly corrupted) single label of training sample ``index``."""
        if not self.samples[index]:
            return int(label)
        return self._other(int(label), self._rng(index, 0))

    def multilabel(self, index: int, labels: np.ndarray | torch.Tensor) -> np.ndarray:
        """The (possibly corrupted) ``(K,)`` float32 multi-hot labels of training sample ``index``."""
        y = np.asarray(labels, dtype=np.float32).reshape(self.k).copy()
        chosen = np.flatnonzero(self.bits[index])
        if chosen.size == 0:
            return y
        if self.kind == "uniform":
            y[chosen] = 1.0 - y[chosen]
            return y
        rng = self._rng(index, 1)
        orig = y.copy()
        for c in chosen:
            if orig[c] > 0.5:  # confusion: present label c becomes a "similar" class
                y[c] = 0.0
                y[self._other(int(c), rng)] = 1.0
            else:  # spurious tag
                y[c] = 1.0
        return y

    def mask(self, index: int, mask: np.ndarray | torch.Tensor) -> np.ndarray:
        """The (possibly corrupted) ``(H, W)`` int64 mask: each connected class region relabelled
        with prob. ``f``."""
        from scipy import ndimage

        m = np.asarray(mask).astype(np.int64)
        out = m.copy()
        if self.fraction == 0:
            return out
        rng = self._rng(index, 2)
        for c in np.unique(m[m != IGNORE_INDEX]):
            regions, count = ndimage.label(m == c)  # 4-connectivity (the default structure)
            flip = rng.random(count) < self.fraction
            for r in np.flatnonzero(flip):
                out[regions == r + 1] = self._other(int(c), rng)
        return out

    def apply(self, index: int, sample: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        """A copy of ``sample`` with its ``keys`` (of :data:`NOISY_KEYS`) corrupted."""
        out = dict(sample)
        if "label" in keys and "label" in out:
            out["label"] = torch.tensor(self.label(index, int(out["label"])), dtype=torch.int64)
        if "multilabel" in keys and "multilabel" in out:
            out["multilabel"] = torch.from_numpy(self.multilabel(index, out["multilabel"]))
        if "mask" in keys and "mask" in out:
            out["mask"] = torch.from_numpy(self.mask(index, out["mask"]))
        return out


def noisy_keys(task: str, supervision: str = "full") -> tuple[str, ...]:
    """The label key a task trains on (what to corrupt): ``label``, ``multilabel`` or ``mask``."""
    if task == "classify":
        return ("label",)
    if task == "multilabel" or (task == "segment" and supervision == "image"):
        return ("multilabel",)
    if task == "segment":
        return ("mask",)
    raise ConfigError(f"label noise applies to classify, multilabel and segment tasks, not '{task}'")


class NoisyLabels(Dataset):
    """A training dataset whose labels of ``keys`` are corrupted by a :class:`LabelNoise` plan.

    Args:
        dataset: map-style dataset of sample dicts.
        fraction, kind, seed: as for :class:`LabelNoise`.
        num_classes: classes ``K``.
        keys: label keys to corrupt (:func:`noisy_keys`).

    Other attributes (``classes``, ``label_matrix`` -- the *clean* labels, for stratification) are those
    of ``dataset``.
    """

    def __init__(self, dataset: Any, fraction: float, kind: str, num_classes: int, keys: tuple[str, ...],
                 seed: int = 0) -> None:
        bad = [k for k in keys if k not in NOISY_KEYS]
        if bad:
            raise ConfigError(f"cannot corrupt {bad}; label noise applies to {', '.join(NOISY_KEYS)}")
        self.dataset = dataset
        self.keys = tuple(keys)
        self.noise = LabelNoise(len(dataset), num_classes, fraction, kind, seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.noise.apply(index, self.dataset[index], self.keys)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


def corrupt_targets(target: torch.Tensor, task: str, num_classes: int, fraction: float, kind: str = "uniform",
                    seed: int = 0) -> torch.Tensor:
    """A corrupted copy of a whole split's targets (the evaluation protocols' training split).

    Args:
        target: ``(N,)`` int64 (classify), ``(N, K)`` float32 (multilabel) or ``(N, H, W)`` int64 (segment).
        task: ``classify`` | ``multilabel`` | ``segment``.
        num_classes, fraction, kind, seed: as for :class:`LabelNoise`.
    """
    key = noisy_keys(task)[0]
    plan = LabelNoise(int(target.shape[0]), num_classes, fraction, kind, seed)
    if fraction == 0:
        return target.clone()
    if key == "label":
        y = target.numpy()
        return torch.as_tensor([plan.label(i, int(v)) for i, v in enumerate(y)], dtype=target.dtype)
    if key == "multilabel":
        return torch.from_numpy(np.stack([plan.multilabel(i, r) for i, r in enumerate(target.numpy())])).to(
            target.dtype
        )
    return torch.from_numpy(np.stack([plan.mask(i, m) for i, m in enumerate(target.numpy())])).to(
        target.dtype
    )
