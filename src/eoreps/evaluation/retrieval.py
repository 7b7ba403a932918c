"""Retrieval metrics on embeddings: rank of the first correct gallery item, recall@k and their chance levels.

Similarity is the cosine of the embeddings. For a query, the gallery items that count as correct are its
*relevant* items: in cross-modal retrieval (S1 query, S2 gallery) the one gallery row of the same sample; in
same-modality retrieval the gallery rows sharing a label with the query (the query itself left out).

* **rank** (1-based) of the first relevant item: ``1 + #{irrelevant j : s(q, j) >= max_relevant s(q, .)}``;
  ties are counted pessimistically (an irrelevant item scoring exactly as high ranks first).
* **recall@k**: the share of queries whose first relevant item is within the top ``k``.
* **chance** (a random ordering of ``N`` candidates of which ``R`` are relevant): recall@k
  ``1 - C(N-R, k) / C(N, k)`` and mean rank ``(N+1)/(R+1)``; for one relevant item ``k/N`` and ``(N+1)/2``.

torchmetrics' ``RetrievalRecall`` / scikit-learn have no rank-of-first-hit with pessimistic ties and chance
levels, and need the full ``N x N`` score matrix at once; here it is computed in row blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

BLOCK = 1024  # query rows per block: the score block is BLOCK x N floats
KS: tuple[int, ...] = (1, 5, 10)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32): cosine similarity = dot product."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def first_hit_ranks(q: np.ndarray, g: np.ndarray, relevant: np.ndarray, exclude: np.ndarray | None = None,
                    block: int = BLOCK) -> np.ndarray:
    """Rank of the first relevant gallery item for each query under cosine similarity.

    Args:
        q: ``(Nq, D)`` query embeddings.
        g: ``(Ng, D)`` gallery embeddings.
        relevant: ``(Nq, Ng)`` bool, True where the gallery item is correct for the query (for large sets
            use :func:`cross_modal_ranks` / :func:`label_ranks`, which build it block by block).
        exclude: optional ``(Nq,)`` gallery index to leave out for each query (``-1``: none), e.g. the query
            itself when query and gallery are the same set.
        block: query rows per score block.

    Returns:
        ``(Nq,)`` float ranks (1-based); NaN where a query has no relevant gallery item.
    """
    return _ranks(q, g, lambda s, e: relevant[s:e], exclude, block)


def _ranks(q: np.ndarray, g: np.ndarray, relevant_rows: Callable[[int, int], np.ndarray],
           exclude: np.ndarray | None, block: int) -> np.ndarray:
    qn, gn = unit_rows(q), unit_rows(g)
    out = np.empty(len(qn), dtype=np.float64)
    for s in range(0, len(qn), block):
        e = min(s + block, len(qn))
        sim = qn[s:e] @ gn.T
        rel = np.asarray(relevant_rows(s, e), dtype=bool).copy()
        cand = np.ones_like(rel)
        if exclude is not None:
            rows = np.nonzero(exclude[s:e] >= 0)[0]
            cand[rows, exclude[s:e][rows]] = False
            rel[rows, exclude[s:e][rows]] = False
        best = np.where(rel, sim, -np.inf).max(axis=1)
        beaten = ((sim >= best[:, None]) & cand & ~rel).sum(axis=1)
        out[s:e] = np.where(np.isfinite(best), 1.0 + beaten, np.nan)
    return out


def cross_modal_ranks(q: np.ndarray, g: np.ndarray, match: np.ndarray | None = None,
                      block: int = BLOCK) -> np.ndarray:
    """Rank of the true match of each query: gallery row ``match[i]`` (default ``i``: same sample).

    Cosine similarity, 1-based, ties counted pessimistically. Returns ``(Nq,)`` int64.
    """
    idx = np.arange(len(q)) if match is None else np.asarray(match, dtype=np.int64)
    if len(idx) != len(q) or (len(idx) and (idx.min() < 0 or idx.max() >= len(g))):
        raise ValueError(f"match must give a gallery row (0..{len(g) - 1}) for each of the {len(q)} queries")
    qn, gn = unit_rows(q), unit_rows(g)
    out = np.empty(len(qn), dtype=np.int64)
    for s in range(0, len(qn), block):
        sim = qn[s:s + block] @ gn.T
        best = sim[np.arange(len(sim)), idx[s:s + block]]
        out[s:s + block] = (sim >= best[:, None]).sum(axis=1)  # the match itself + every item scoring as high
    return out


def label_ranks(q: np.ndarray, g: np.ndarray, labels_q: np.ndarray, labels_g: np.ndarray,
                exclude: np.ndarray | None = None, block: int = BLOCK) -> np.ndarray:
    """Rank of the first gallery item sharing a label with the query (kNN retrieval by label).

    ``labels_q`` ``(Nq, K)`` / ``labels_g`` ``(Ng, K)`` multi-hot (one-hot for single-label data); ``exclude``
    as in :func:`first_hit_ranks`. NaN for a query with no relevant gallery item.
    """
    lq, lg = np.asarray(labels_q, dtype=np.float32), np.asarray(labels_g, dtype=np.float32)
    return _ranks(q, g, lambda s, e: (lq[s:e] @ lg.T) > 0, exclude, block)


def relevant_counts(
    labels_q: np.ndarray, labels_g: np.ndarray, exclude: np.ndarray | None = None
) -> np.ndarray:
    """Number of relevant gallery items of each query (label sharing, ``exclude`` left out)."""
    lq, lg = np.asarray(labels_q, dtype=np.float32), np.asarray(labels_g, dtype=np.float32)
    counts = np.empty(len(lq), dtype=np.int64)
    for s in range(0, len(lq), BLOCK):
        rel = (lq[s:s + BLOCK] @ lg.T) > 0
        if exclude is not None:
            ex = exclude[s:s + BLOCK]
            rows = np.nonzero(ex >= 0)[0]
            rel[rows, ex[rows]] = False
        counts[s:s + BLOCK] = rel.sum(axis=1)
    return counts


def chance_recall(n: np.ndarray | int, r: np.ndarray | int, k: int) -> np.ndarray:
    """Probability that a random ordering of ``n`` candidates puts one of ``r`` relevant ones in the top
    ``k``."""
    n_arr, r_arr = np.asarray(n, dtype=np.float64), np.asarray(r, dtype=np.float64)
    miss = np.ones(np.broadcast(n_arr, r_arr).shape)
    for t in range(k):  # 1 - C(n-r, k)/C(n, k) as a product, exact and without huge binomials
        miss = miss * np.clip((n_arr - r_arr - t) / np.maximum(n_arr - t, 1.0), 0.0, 1.0)
    return 1.0 - miss


def chance_mean_rank(n: np.ndarray | int, r: np.ndarray | int) -> np.ndarray:
    """Expected rank of the first of ``r`` relevant items among ``n`` in random order: ``(n+1)/(r+1)``."""
    return (np.asarray(n, dtype=np.float64) + 1.0) / (np.asarray(r, dtype=np.float64) + 1.0)


def summarize(ranks: np.ndarray, n_candidates: np.ndarray | int, n_relevant: np.ndarray | int,
              ks: Sequence[int] = KS) -> dict[str, float]:
    """recall@k, mean/median rank and their chance levels over the queries that have a relevant item.

    Args:
        ranks: ``(Nq,)`` first-hit ranks (NaN = no relevant item: left out and counted in ``no_relevant``).
        n_candidates: gallery size per query (or one number).
        n_relevant: relevant items per query (or one number; 1 for cross-modal retrieval).
        ks: the ``k`` of recall@k.
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    n = np.broadcast_to(np.asarray(n_candidates, dtype=np.float64), ranks.shape)
    r = np.broadcast_to(np.asarray(n_relevant, dtype=np.float64), ranks.shape)
    ok = np.isfinite(ranks) & (r > 0)
    median_n = float(np.median(n)) if len(n) else 0.0
    row: dict[str, float] = {
        "queries": int(ok.sum()),
        "candidates": int(median_n) if median_n.is_integer() else median_n,
    }
    if not ok.any():
        return {**row, **{f"recall@{k}": float("nan") for k in ks}, "mean_rank": float("nan"),
                "median_rank": float("nan")}
    rk, n, r = ranks[ok], n[ok], r[ok]
    for k in ks:
        row[f"recall@{k}"] = float((rk <= k).mean())
        row[f"chance_recall@{k}"] = float(chance_recall(n, r, k).mean())
    row["mean_rank"] = float(rk.mean())
    row["chance_mean_rank"] = float(chance_mean_rank(n, r).mean())
    row["median_rank"] = float(np.median(rk))
    row["no_relevant"] = int((~ok).sum())
    return row
