"""Stratified, nested label-fraction subsets (single- and multi-label) and stratified splits.

The label-efficiency study trains on 1 %, 10 %, ... of the labelled training set. Three properties
must hold, and all three follow from one construction:

* **stratified**: each subset keeps the class (label) proportions of the full set;
* **nested**: the 1 % subset lies inside the 10 % subset, which lies inside the 20 % subset, ...;
* **fixed per seed**: the same labels and seed give the same subsets, whatever other fractions are
  asked for, so every method in one comparison sees the same subsets.

Construction: :func:`stratified_order` draws, once per seed, a permutation of the samples in which
*every prefix* is stratified; the subset for fraction ``f`` is a prefix of it. Nesting is then true
by construction, and a subset never depends on which other fractions were requested.

* **Single-label** ``(N,)`` ints (every distinct value is a class: drop unlabelled samples first):
  systematic stratified sampling. Within each class the samples are shuffled; the ``j``-th of the ``n_c``
  samples of class ``c`` gets the key ``(j + u) / n_c`` with ``u ~ U(0, 1)``, and samples are sorted by
  key. Any prefix holding a share ``t`` of the keys holds ``t * n_c`` samples of class ``c`` to within
  one sample, for every class at once.
* **Multi-label** ``(N, K)`` multi-hot: recursive bisection with iterative stratification (Sechidis,
  Tsoumakas & Vlahavas, ECML-PKDD 2011). The samples are split into two halves by iterative
  stratification (rarest label first, each of its samples goes to the half that most wants that
  label), each half is ordered the same way recursively, and the order is ``order(A) + order(B)``.
  A prefix is a union of at most ``log2 N`` such stratified blocks plus one sample, so its label
  counts stay within a few samples of the proportional ones (measured on N = 2,000, K = 19, 8
  seeds: worst label off by at most 2.4 samples in 200-sample prefixes; a random subset is off
  by ~9). It costs ``O(N log N)`` plain-Python steps: ~11 s of CPU time for N = 50,000, K = 19
  (extrapolated: about a minute for N = 250,000), so compute it once per seed and reuse it;
  single-label orders are vectorised (~1 s for N = 270,000).

**Minimum per class** (``min_per_class``, default 1): the first ``min_per_class`` samples of every
class (multi-label: positives of every label, rarest label first, counting samples already chosen for
other labels) are moved to the front of the order, keeping their relative order. The subset for
fraction ``f`` is the first ``max(n_f, F)`` samples of the order, with ``n_f = round(f * N)`` (half
up, at least 1) and ``F`` the number of such forced samples (at most ``min_per_class`` times the
number of classes). So at 1 % of a small training set every class that exists still has at least
``min_per_class`` examples (all of them when it has fewer), and the subset can be slightly larger
than ``f * N``; class ``c`` then has about ``max(min_per_class, f * n_c)`` samples. Nesting is kept
because the forced samples are the same for every fraction.

**k-shot episodes** (:func:`kshot_indices`): ``k`` labelled samples per class instead of a fraction,
nested across ``k`` and fixed per seed (multi-label: at least ``k`` positives per label, greedy).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from eoreps.errors import ConfigError, DataError

__all__ = ["assign_splits", "check_shots", "check_split_ratios", "kshot_indices", "label_fraction_indices",
           "stratified_order", "subset_size", "train_val_test_split"]


def _as_labels(labels: Any) -> np.ndarray:
    """``(N,)`` int64 class indices or ``(N, K)`` bool multi-hot, from numpy or torch input."""
    if hasattr(labels, "detach"):  # torch.Tensor without importing torch
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim == 1:
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise DataError(f"single-label labels must be integers, got dtype {arr.dtype} with "
                                "non-integer values; pass class indices of shape (N,)")
        return arr.astype(np.int64)
    if arr.ndim == 2:
        if not np.all(np.isfinite(arr)):
            raise DataError("multi-label labels contain NaN/inf; pass a (N, K) 0/1 multi-hot matrix")
        return arr > 0.5
    raise DataError(f"labels must be (N,) class indices or (N, K) multi-hot, got shape {arr.shape}")


def _check_fraction(f: float) -> float:
    try:
        f = float(f)
    except (TypeError, ValueError):
        raise ConfigError(
            f"label fraction {f!r} is not a number; use values in (0, 1], e.g. 0.01 0.1 1.0"
        ) from None
    if not (math.isfinite(f) and 0.0 < f <= 1.0):
        raise ConfigError(f"label fraction {f} is outside (0, 1]; use e.g. 0.01 for 1 % of the labels")
    return f


def subset_size(fraction: float, n: int) -> int:
    """``round(fraction * n)`` rounded half up, clipped to ``[1, n]`` (before the per-class minimum)."""
    f = _check_fraction(fraction)
    return int(min(n, max(1, math.floor(f * n + 0.5)))) if n else 0


# ----------------------------------------------------------------------------------------- orders
def _single_label_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Systematic stratified order of ``(N,)`` class indices: every prefix is stratified to +-1."""
    n = len(y)
    perm = rng.permutation(n)
    ys = y[perm]
    # rank of each (shuffled) sample within its class, and the class sizes
    sort = np.argsort(ys, kind="stable")
    _, starts, counts = np.unique(ys[sort], return_index=True, return_counts=True)
    rank = np.empty(n, dtype=np.int64)
    rank[sort] = np.arange(n) - np.repeat(starts, counts)
    size = np.empty(n, dtype=np.int64)
    size[sort] = np.repeat(counts, counts)
    key = (rank + rng.random(n)) / size
    return perm[np.argsort(key, kind="stable")]


def _bisect(rows: list[list[int]], idx: list[int], rnd: random.Random) -> tuple[list[int], list[int]]:
    """Split ``idx`` into two halves (sizes ``ceil(n/2)``, ``floor(n/2)``) by iterative stratification.

    Sechidis et al.'s algorithm for two subsets: repeatedly take the label with the fewest
    unassigned samples (ties at random) and send each of its unassigned samples to the half that
    desires that label most (desires within one sample count as tied), ties to the half that
    desires the sample's other labels more, then the half that wants more samples, then a coin;
    desires are updated for every label of the sample. Samples without labels fill the halves up to size.

    ``rows[i]`` lists the labels of sample ``i``; ``idx`` is in random order. Hand-written in plain
    Python over these sparse label lists instead of calling ``iterstrat``'s ``IterativeStratification``:
    the recursion calls it on ~N small blocks, where numpy's per-call overhead dominated (measured
    ~50 s for N = 20,000, K = 19 with a numpy version on the shared 2-core machine).
    """
    n = len(idx)
    size_a = (n + 1) // 2
    share_a = size_a / n
    members: dict[int, list[int]] = {}
    for i in idx:
        for k in rows[i]:
            members.setdefault(k, []).append(i)
    remaining = {k: len(v) for k, v in members.items()}
    # desire difference (A minus B) per label, and the size difference, are all the rule needs
    diff = {k: c * share_a - c * (1.0 - share_a) for k, c in remaining.items()}
    t = size_a - (n - size_a)
    side: dict[int, int] = {}
    while remaining:
        low = min(remaining.values())
        ties = [k for k, c in remaining.items() if c == low]
        label = ties[rnd.randrange(len(ties))] if len(ties) > 1 else ties[0]
        for i in members[label]:
            if i in side:
                continue
            d = diff[label]
            # Desires differing by less than one sample count as a tie: with a strict comparison
            # every singleton label of an odd-sized block would go to the larger half.
            if d >= 1.0 or d <= -1.0:
                to_a = d > 0
            else:  # tie on this label: the half that wants the sample's other labels more, then size
                # (an addition to Sechidis' rule; on 8 seeds of N = 2,000, K = 19 it cut the worst
                # label deviation of 200-sample prefixes from 4.1 to 2.4 samples)
                other = sum(diff[k] for k in rows[i]) - d
                to_a = other > 1e-9 or (other >= -1e-9 and (t > 0 or (t == 0 and rnd.random() < 0.5)))
            side[i] = 0 if to_a else 1
            step = -1.0 if to_a else 1.0
            t += -1 if to_a else 1
            for k in rows[i]:
                diff[k] += step
                remaining[k] -= 1
        for k in [k for k, c in remaining.items() if c == 0]:
            del remaining[k]
    a = [i for i in idx if side.get(i) == 0]
    b = [i for i in idx if side.get(i) == 1]
    for i in idx:  # unlabelled samples: fill A up to its size, the rest to B
        if i not in side:
            (a if len(a) < size_a else b).append(i)
    if not a or not b:  # cannot happen with the rule above; never loop forever
        return idx[:size_a], idx[size_a:]
    return a, b


def _multi_label_order(y: np.ndarray, rng: np.random.Generator, leaf: int = 2) -> np.ndarray:
    """Recursive-bisection order of ``(N, K)`` multi-hot labels: every prefix is stratified."""
    rnd = random.Random(int(rng.integers(2**62)))
    nz_rows, nz_cols = np.nonzero(y)
    rows: list[list[int]] = [[] for _ in range(len(y))]
    for i, k in zip(nz_rows.tolist(), nz_cols.tolist(), strict=True):
        rows[i].append(k)
    out: list[int] = []
    stack = [rng.permutation(len(y)).tolist()]
    while stack:  # depth-first, A before B, without Python recursion limits
        idx = stack.pop()
        if len(idx) <= leaf:
            out.extend(idx)
            continue
        a, b = _bisect(rows, idx, rnd)
        stack.append(b)
        stack.append(a)
    return np.asarray(out, dtype=np.int64)


def _forced_first(onehot: np.ndarray, order: np.ndarray, min_per_class: int) -> tuple[np.ndarray, int]:
    """Move the first ``min_per_class`` positives of every label (rarest first) to the front."""
    if min_per_class <= 0 or len(order) == 0:
        return order, 0
    ordered = onehot[order]  # (N, K) in order
    have = np.zeros(onehot.shape[1], dtype=np.int64)
    forced = np.zeros(len(order), dtype=bool)
    for k in np.argsort(ordered.sum(0), kind="stable"):
        need = min_per_class - have[k]
        if need <= 0:
            continue
        pos = np.flatnonzero(ordered[:, k] & ~forced)[:need]
        forced[pos] = True
        have += ordered[pos].sum(0)
    return np.concatenate([order[forced], order[~forced]]), int(forced.sum())


def _order_and_forced(labels: Any, seed: int, min_per_class: int) -> tuple[np.ndarray, int]:
    y = _as_labels(labels)
    rng = np.random.default_rng(seed)
    if y.ndim == 1:
        order = _single_label_order(y, rng)
        onehot = y[:, None] == np.unique(y)[None, :] if len(y) else np.zeros((0, 0), dtype=bool)
    else:
        order = _multi_label_order(y, rng)
        onehot = y
    return _forced_first(onehot, order, int(min_per_class))


def stratified_order(labels: Any, seed: int, min_per_class: int = 0) -> np.ndarray:
    """A seeded permutation of ``range(N)`` whose every prefix is stratified.

    Args:
        labels: ``(N,)`` integer class indices or ``(N, K)`` multi-hot (numpy or torch).
        seed: the subset seed; the same labels and seed always give the same order.
        min_per_class: move the first ``min_per_class`` samples of every class/label to the front
            (see the module docstring); 0 leaves the order purely stratified.

    Returns:
        ``(N,)`` int64 sample indices.
    """
    return _order_and_forced(labels, seed, min_per_class)[0]


def label_fraction_indices(labels: Any, fractions: Sequence[float], seed: int,
                           min_per_class: int = 1) -> dict[float, np.ndarray]:
    """Nested, stratified subsets of the training set, one per label fraction.

    Args:
        labels: ``(N,)`` integer class indices or ``(N, K)`` multi-hot (numpy or torch).
        fractions: values in ``(0, 1]``, e.g. ``(0.01, 0.1, 0.2, 0.5, 1.0)``.
        seed: subset seed; fixed subsets per seed, different ones across seeds.
        min_per_class: every class (label) present gets at least this many examples in every
            subset (all of them if it has fewer); the subset may then exceed ``round(f * N)``.

    Returns:
        ``{fraction: sorted (n_f,) int64 indices}``; a smaller fraction's indices are a subset of a
        larger one's.

    Raises:
        ConfigError: a fraction outside ``(0, 1]``.
        DataError: labels of the wrong shape.
    """
    fracs = [_check_fraction(f) for f in fractions]
    if min_per_class < 0:
        raise ConfigError(f"min_per_class must be >= 0, got {min_per_class}")
    order, n_forced = _order_and_forced(labels, seed, min_per_class)
    n = len(order)
    if n == 0:
        raise DataError("cannot draw label fractions from an empty label array; check the training split")
    return {f: np.sort(order[: max(subset_size(f, n), n_forced)]) for f in fracs}


def train_val_test_split(labels: Any, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                         seed: int = 0) -> tuple[np.ndarray, ...]:
    """Disjoint stratified splits (e.g. train/val/test) as consecutive blocks of one stratified order.

    Args:
        labels: ``(N,)`` class indices or ``(N, K)`` multi-hot.
        fractions: shares of ``N`` per split, each ``>= 0`` and summing to at most 1; split sizes
            use cumulative half-up rounding, so they add up to ``round(sum * N)``.
        seed: split seed.

    Returns:
        One sorted int64 index array per entry of ``fractions``.
    """
    fr = [float(f) for f in fractions]
    if any(not math.isfinite(f) or f < 0 for f in fr) or sum(fr) > 1 + 1e-9:
        raise ConfigError(f"split fractions {tuple(fractions)} must be >= 0 and sum to at most 1")
    order = stratified_order(labels, seed)
    n = len(order)
    bounds = [0] + [int(math.floor(c * n + 0.5)) for c in np.cumsum(fr)]
    return tuple(np.sort(order[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True))


SPLIT_NAMES = ("train", "val", "test")


def check_split_ratios(ratios: Any) -> tuple[float, float, float]:
    """Three non-negative train/val/test shares summing to 1 (a ``"0.7,0.15,0.15"`` string is accepted)."""
    items = [r for r in ratios.split(",") if r.strip()] if isinstance(ratios, str) else list(ratios)
    try:
        fr = tuple(float(r) for r in items)
    except (TypeError, ValueError):
        fr = ()
    if len(fr) != 3 or any(not math.isfinite(f) or f < 0 for f in fr) or abs(sum(fr) - 1) > 1e-6:
        raise ConfigError(f"split ratios {ratios!r} must be three train,val,test shares >= 0 summing to 1; "
                          "write e.g. split_ratios=0.7,0.15,0.15")
    return fr  # type: ignore[return-value]


def assign_splits(labels: Any, ratios: Sequence[float], seed: int) -> np.ndarray:
    """``"train"``/``"val"``/``"test"`` per sample: a seeded split, stratified by ``labels``.

    Args:
        labels: ``(N,)`` class indices or ``(N, K)`` multi-hot; pass zeros for unlabelled data (plain
            random split).
        ratios: train/val/test shares (:func:`check_split_ratios`).
        seed: split seed; the same labels, ratios and seed always give the same assignment.
    """
    parts = train_val_test_split(labels, check_split_ratios(ratios), seed)
    out = np.empty(sum(len(p) for p in parts), dtype=object)
    for name, idx in zip(SPLIT_NAMES, parts, strict=True):
        out[idx] = name
    return out


# ------------------------------------------------------------------------------------------ k-shot
def check_shots(shots: Sequence[Any]) -> list[int]:
    """``shots`` as ints, each a whole number >= 1 (a one-line :class:`ConfigError` otherwise)."""
    out = []
    for k in shots:
        try:
            ok = float(k) == int(k) and int(k) >= 1
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"shots: {k} is not a whole number >= 1 of labelled samples per class; "
                              "use e.g. shots=1,5,10")
        out.append(int(k))
    return out


def kshot_indices(labels: Any, shots: Sequence[int], seed: int) -> dict[int, np.ndarray]:
    """Nested k-shot episodes: ``k`` labelled training samples per class, one subset per ``k``.

    Construction (one seeded random order of the samples, then rounds): in round ``j = 1, 2, ...`` every
    class (multi-label: every label, rarest first) that holds fewer than ``j`` chosen samples takes the
    next sample of the order that carries it and is not chosen yet; the ``k``-shot episode is the set
    chosen after round ``k``. So

    * **nested**: the 1-shot episode lies inside the 5-shot one, which lies inside the 10-shot one
      (each round only adds samples);
    * **fixed per seed**: the same labels and seed give the same episodes whatever other ``k`` are asked for;
    * **single-label**: exactly ``k`` samples of every class (all of a class's samples when it has fewer
      than ``k``); every distinct value is a class, so drop unlabelled samples first;
    * **multi-label**: at least ``k`` positives of every label (all when it has fewer); a sample chosen
      for one label counts for all of its labels, so common labels usually get more than ``k``.

    Args:
        labels: ``(N,)`` integer class indices or ``(N, K)`` multi-hot (numpy or torch).
        shots: values of ``k`` (whole numbers >= 1), e.g. ``(1, 5, 10)``.
        seed: episode seed.

    Returns:
        ``{k: sorted int64 indices}``.
    """
    ks = check_shots(shots)
    y = _as_labels(labels)
    if len(y) == 0:
        raise DataError("cannot draw k-shot episodes from an empty label array; check the training split")
    onehot = y[:, None] == np.unique(y)[None, :] if y.ndim == 1 else y
    order = np.random.default_rng(seed).permutation(len(y))
    ordered = onehot[order]
    positives = [np.flatnonzero(ordered[:, j]) for j in range(ordered.shape[1])]
    labels_by_rarity = [j for j in np.argsort(ordered.sum(0), kind="stable") if len(positives[j])]
    chosen = np.zeros(len(order), dtype=bool)
    have = np.zeros(ordered.shape[1], dtype=np.int64)
    cursor = np.zeros(ordered.shape[1], dtype=np.int64)
    out: dict[int, np.ndarray] = {}
    for round_ in range(1, max(ks) + 1):
        for j in labels_by_rarity:
            pos = positives[j]
            while have[j] < round_ and cursor[j] < len(pos):
                i = pos[cursor[j]]
                cursor[j] += 1
                if not chosen[i]:
                    chosen[i] = True
                    have += ordered[i]
        if round_ in ks:
            out[round_] = np.sort(order[chosen])
    return {k: out[k] for k in ks}
