"""``eoreps retrieve``: cross-modal (S1 query -> S2 gallery) and same-modality (kNN by label) retrieval on an
embedding folder of ``eoreps embed``, per split, against chance.

* **cross-modal** (query modality != gallery modality, or ``match="id"``): the correct gallery item of a query
  is the gallery row with the same sample id; chance recall@k = k/N, chance mean rank = (N+1)/2.
* **by label** (same modality, or ``match="label"``): the correct items share a label with the query (the
  query itself is left out of its own gallery); chance from the number of relevant items per query.

Query and gallery always come from the same split. Output: ``retrieval.md``, ``retrieval.csv``,
``retrieval.parquet`` and ``retrieval.png`` (query thumbnails with their top-5 gallery items, correct ones
framed) when the folder has thumbnails. Metrics: :mod:`eoreps.evaluation.retrieval`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eoreps.cli_config import opt
from eoreps.errors import ConfigError, DataError
from eoreps.evaluation.embedding_store import INDEX, META, EmbeddingFolder
from eoreps.evaluation.retrieval import (
    KS,
    cross_modal_ranks,
    label_ranks,
    relevant_counts,
    summarize,
    unit_rows,
)
from eoreps.io import atomic_path, atomic_write_text

MATCHES = ("auto", "id", "label")


@dataclass
class RetrieveConfig:
    """Options of ``eoreps retrieve`` (YAML keys = these names).

    Attributes:
        embeddings: embedding folder of ``eoreps embed`` (queries, and the gallery unless
        ``gallery_embeddings``).
        query, gallery: modality keys of the query and gallery embeddings.
        gallery_embeddings: another folder of the same run for the gallery (refused if its run differs).
        space: ``joint`` (aligned projection space), ``backbone``, or ``auto`` (joint where present).
        splits: splits to evaluate (None: every split present).
        match: ``id`` (same sample), ``label`` (shares a label) or ``auto`` (id across modalities, else
        label).
        examples: queries shown in the thumbnail figure.
        out: output folder.
    """

    embeddings: str = opt("", help="Embedding folder written by `eoreps embed`.")
    query: str = opt("s1", help="Query modality (e.g. s1).")
    gallery: str = opt("s2", help="Gallery modality (e.g. s2; the query modality = kNN retrieval by label).")
    gallery_embeddings: str = opt("", help="Separate embedding folder of the same run for the gallery "
                                           "(default: --embeddings).")
    space: str = opt(
        "auto", help="joint (aligned projection space), backbone, or auto (joint where present)."
    )
    splits: list[str] | None = opt(
        None, help="Splits to evaluate, e.g. test (default: every split).", none=""
    )
    match: str = opt("auto", help="id (same sample), label (shares a label) or auto (id across modalities, "
                                  "label within one).")
    examples: int = opt(4, help="Queries shown in the thumbnail figure (0 = no figure).")
    out: str = "retrieval_out"

    def __post_init__(self) -> None:
        if self.match not in MATCHES:
            from eoreps.errors import unknown_name

            raise unknown_name("match", self.match, list(MATCHES))
        if self.space not in ("auto", "joint", "backbone"):
            from eoreps.errors import unknown_name

            raise unknown_name("space", self.space, ["auto", "joint", "backbone"])
        if self.examples < 0:
            raise ConfigError(f"examples={self.examples} must be >= 0")

    def apply_quick(self, keep: Collection[str] = ()) -> list[str]:
        """``--quick``: retrieval is already fast; only the figure shrinks to two queries."""
        if "examples" in keep or self.examples <= 2:
            return []
        self.examples = 2
        return ["--examples 2"]


@dataclass
class RetrievalResult:
    """What :func:`run_retrieve` computed.

    Attributes:
        table: one row per split (recall@k, mean/median rank, chance levels, sizes).
        figure: the thumbnail figure, or None (``note`` says why).
        note: why there is no figure ("" when there is one).
        examples: per shown query: split, query row, top-5 gallery rows, which of them are correct.
    """

    table: pd.DataFrame
    figure: Path | None
    note: str = ""
    examples: list[dict[str, Any]] = field(default_factory=list)


def _space(cfg: RetrieveConfig, q: EmbeddingFolder, g: EmbeddingFolder) -> str:
    if cfg.space != "auto":
        return cfg.space
    both = cfg.query in q.modalities("joint") and cfg.gallery in g.modalities("joint")
    return "joint" if both else "backbone"


def _aligned_labels(q: EmbeddingFolder, g: EmbeddingFolder) -> tuple[np.ndarray, np.ndarray]:
    """Multi-hot labels of both folders over one class list (a one-line error naming the meta without
    labels)."""
    names = sorted(set(q.label_names()) | set(g.label_names())) or None  # one column per name in both folders
    lq, lg = q.label_matrix(names), g.label_matrix(names)
    for folder, lab in ((q, lq), (g, lg)):
        if lab is None:
            raise DataError(f"{folder.path / META}: no 'label' or 'labels' column, so retrieval by label is "
                            "impossible; use --match id or embed labelled data")
    assert lq is not None and lg is not None
    k = max(lq[0].shape[1], lg[0].shape[1])
    pad = [np.pad(m, ((0, 0), (0, k - m.shape[1]))) for m in (lq[0], lg[0])]
    return pad[0], pad[1]


def _split_ranks(
    cfg: RetrieveConfig,
    by_id: bool,
    q: EmbeddingFolder,
    g: EmbeddingFolder,
    space: str,
    split: str,
    labels: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Ranks of one split, the query and gallery rows used, and the table row."""
    qrows, grows = q.split_rows(split), g.split_rows(split)
    zq, zg = q.array(space, cfg.query)[qrows], g.array(space, cfg.gallery)[grows]
    same_set = q.path.resolve() == g.path.resolve() and cfg.query == cfg.gallery
    row: dict[str, Any] = {"split": split, "query": cfg.query, "gallery": cfg.gallery, "space": space,
                           "match": "id" if by_id else "label"}
    if by_id:
        if same_set:  # the query is its own match: retrieval by id within one modality is trivial
            raise ConfigError("--match id with the same modality and folder retrieves each query itself; "
                              "use --match label")
        gid = {v: i for i, v in enumerate(g.ids("gallery")[grows])}
        qid = q.ids("query")[qrows]
        match = np.array([gid.get(v, -1) for v in qid], dtype=np.int64)
        found = match >= 0
        if not found.any():
            raise DataError(f"{g.path / META}: none of the {len(qid)} '{split}' query ids is in the gallery; "
                            "query and gallery must embed the same samples")
        qrows, zq, match = qrows[found], zq[found], match[found]
        ranks = cross_modal_ranks(zq, zg, match).astype(np.float64)
        row.update(summarize(ranks, len(zg), 1))
        row["unmatched"] = int((~found).sum())
        return ranks, qrows, row
    assert labels is not None
    lq, lg = labels[0][qrows], labels[1][grows]
    exclude = None
    if same_set:
        exclude = np.arange(len(qrows), dtype=np.int64)
    ranks = label_ranks(zq, zg, lq, lg, exclude)
    n = len(zg) - (1 if same_set else 0)
    row.update(summarize(ranks, n, relevant_counts(lq, lg, exclude)))
    return ranks, qrows, row


def retrieval_table(cfg: RetrieveConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The per-split table of ``cfg`` and what the figure needs (folders, space, ranks per split)."""
    if not cfg.embeddings:
        raise ConfigError("embeddings='' is empty; give the folder written by `eoreps embed`")
    q = EmbeddingFolder.open(cfg.embeddings)
    g = EmbeddingFolder.open(cfg.gallery_embeddings) if cfg.gallery_embeddings else q
    if g is not q and g.run_id != q.run_id:
        raise DataError(f"{g.path / INDEX}: run_id {g.run_id or '(none)'} differs from {q.path / INDEX} "
                        f"({q.run_id or '(none)'}); query and gallery must be embedded by the same run")
    space = _space(cfg, q, g)
    dq, dg = q.array(space, cfg.query).shape[1], g.array(space, cfg.gallery).shape[1]
    if dq != dg:
        raise DataError(
            f"{g.path / INDEX}: {space} embeddings of {cfg.query} ({dq} wide) and {cfg.gallery} ({dg}) "
            "cannot be compared; use --space joint"
        )
    by_id = cfg.match == "id" or (cfg.match == "auto" and cfg.query != cfg.gallery)
    labels = None if by_id else _aligned_labels(q, g)
    splits = list(cfg.splits or []) or [s for s in q.splits() if s in set(g.splits())]
    rows, per_split = [], {}
    for split in splits:
        ranks, qrows, row = _split_ranks(cfg, by_id, q, g, space, split, labels)
        rows.append(row)
        per_split[split] = (ranks, qrows)
    return pd.DataFrame(rows), {"q": q, "g": g, "space": space, "by_id": by_id, "labels": labels,
                                "per_split": per_split}


def _examples(cfg: RetrieveConfig, ctx: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """The top-5 gallery rows of the first ``n`` queries of the last split, and which of them are correct."""
    q, g, space = ctx["q"], ctx["g"], ctx["space"]
    split = list(ctx["per_split"])[-1]
    _, qrows = ctx["per_split"][split]
    grows = g.split_rows(split)
    zq = unit_rows(q.array(space, cfg.query)[qrows[:n]])
    zg = unit_rows(g.array(space, cfg.gallery)[grows])
    same_set = q.path.resolve() == g.path.resolve() and cfg.query == cfg.gallery
    qids, gids = (q.ids("query"), g.ids("gallery")) if ctx["by_id"] else (None, None)
    out = []
    for i, qrow in enumerate(qrows[:n]):
        sim = zg @ zq[i]
        if same_set:
            sim[np.nonzero(grows == qrow)[0]] = -np.inf
        top = np.argsort(-sim, kind="stable")[:5]
        if ctx["by_id"]:
            correct = [bool(gids[grows[t]] == qids[qrow]) for t in top]
        else:
            lq, lg = ctx["labels"]
            correct = [bool((lq[qrow] * lg[grows[t]]).sum() > 0) for t in top]
        out.append(
            {"split": split, "query_row": int(qrow), "top": [int(grows[t]) for t in top], "correct": correct}
        )
    return out


def run_retrieve(cfg: RetrieveConfig) -> RetrievalResult:
    """Compute the table, write ``retrieval.{md,csv,parquet}`` (+ ``retrieval.png``) under ``cfg.out``."""
    from eoreps.report.retrieval import retrieval_figure
    from eoreps.report.tables import markdown_table

    table, ctx = retrieval_table(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "retrieval.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(out / "retrieval.csv") as tmp:
        table.to_csv(tmp, index=False)
    q, g = ctx["q"], ctx["g"]
    tq, tg = q.thumbs(cfg.query), g.thumbs(cfg.gallery)
    figure, note, examples = None, "", []
    if cfg.examples == 0:
        note = "no figure (--examples 0)"
    elif tq is None or tg is None:
        missing = (
            q.path / "thumbs" / f"{cfg.query}.npy" if tq is None else g.path / "thumbs" / f"{cfg.gallery}.npy"
        )
        note = f"no thumbnail figure: {missing} is missing (embed with --thumbnails)"
    else:
        examples = _examples(cfg, ctx, cfg.examples)
        title = f"{cfg.query} -> {cfg.gallery} retrieval ({ctx['space']} space, {examples[0]['split']} split)"
        figure = retrieval_figure(tq, tg, examples, out / "retrieval.png", title=title,
                                  synthetic=q.synthetic, query_name=cfg.query, gallery_name=cfg.gallery)
    md = [f"# Retrieval: {cfg.query} -> {cfg.gallery} ({ctx['space']} space, match by "
          f"{'sample id' if ctx['by_id'] else 'label'})\n"]
    if q.synthetic:
        from eoreps.report.tables import SYNTHETIC_NOTE

        md.append(f"> **Synthetic data.** {SYNTHETIC_NOTE}\n")
    md.append(markdown_table(display_table(table)))
    md.append(f"\n{note}\n" if note else "\n![retrieval examples](retrieval.png)\n")
    atomic_write_text(out / "retrieval.md", "\n".join(md))
    return RetrievalResult(table, figure, note, examples)


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The columns a reader compares: each metric next to its chance level."""
    cols = ["split", "query", "gallery", "space", "match", "queries", "candidates"]
    for k in KS:
        cols += [f"recall@{k}", f"chance_recall@{k}"]
    cols += ["mean_rank", "chance_mean_rank", "median_rank"]
    return table[[c for c in cols if c in table.columns]]
