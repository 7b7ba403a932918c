"""The demo's look at the representation: S1 <-> S2 retrieval on the held-out split and one map.

The test split is embedded with the Dual-SimCLR encoders of the headline run exactly as ``eoreps embed``
does it (:func:`eoreps.evaluation.embed.run_embed`, into ``OUT/embeddings``): from S1 and from S2, in
the backbone space (separate encoders, not aligned) and, where the run exported its projection heads, in
the joint space the contrastive loss aligned. For each space and direction, ``eoreps retrieve``'s table
(:func:`eoreps.evaluation.retrieve.retrieval_table`): recall@k and mean rank of the true partner (the
same sample) against chance (k/N, (N+1)/2). The map shows the joint (else backbone) embeddings of both
modalities coloured by class and modality (:func:`eoreps.report.maps.map_figure`); the thumbnail figure shows
S1 queries with their top-5 S2 matches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from eoreps.io import atomic_path
from eoreps.report import Section

PAIRS = (("s1", "s2"), ("s2", "s1"))
COLUMNS = (
    "space",
    "query",
    "gallery",
    "queries",
    "recall@1",
    "chance_recall@1",
    "recall@5",
    "chance_recall@5",
    "mean_rank",
    "chance_mean_rank",
    "median_rank",
)


def retrieval_rows(emb_dir: Path, split: str) -> pd.DataFrame:
    """``eoreps retrieve``'s table for each space of ``emb_dir`` and each direction of :data:`PAIRS`."""
    from eoreps.evaluation.embedding_store import EmbeddingFolder
    from eoreps.evaluation.retrieve import RetrieveConfig, retrieval_table

    emb = EmbeddingFolder.open(emb_dir)
    tables = []
    for space in ("joint", "backbone"):
        for q, g in PAIRS:
            if q in emb.modalities(space) and g in emb.modalities(space):
                cfg = RetrieveConfig(embeddings=str(emb_dir), query=q, gallery=g, space=space, splits=[split])
                tables.append(retrieval_table(cfg)[0])
    return pd.concat(tables, ignore_index=True)


def embedding_map(emb_dir: Path, png: Path, title: str, seed: int = 0) -> tuple[Path, str]:
    """Map of the S2 and S1 embeddings together (joint space where present), coloured by class, modality and
    season where the metadata has them; returns the PNG and the space shown."""
    from eoreps.evaluation.embedding_store import EmbeddingFolder
    from eoreps.report.maps import map_figure

    emb = EmbeddingFolder.open(emb_dir)
    space = "joint" if {"s2", "s1"} <= set(emb.modalities("joint")) else "backbone"
    z = np.concatenate([emb.array(space, "s2"), emb.array(space, "s1")])
    meta = emb.meta
    colours: dict[str, np.ndarray] = {}
    if "label_name" in meta.columns:
        colours["class"] = np.tile(meta["label_name"].to_numpy(), 2)
    colours["modality"] = np.repeat(np.array(["S2", "S1"], dtype=object), len(meta))
    if "season" in meta.columns and meta["season"].notna().any():
        colours["season"] = np.tile(meta["season"].to_numpy(), 2)
    return map_figure(z, colours, png, f"{title} ({space} space)", synthetic=emb.synthetic, seed=seed), space


def retrieval_section(out: Path, run: str | Path, data: str, n_test: int | None, synthetic: bool,
                      split: str = "test", seed: int = 0) -> Section:
    """Embed ``split`` of ``data`` (at most ``n_test`` samples, seeded) with the run's encoders into
    ``out/embeddings``, write ``retrieval.csv`` / ``retrieval.parquet``, ``embedding_map.png`` and
    ``retrieval/retrieval.png`` under ``out``, and return the report section."""
    from eoreps.evaluation.embed import EmbedConfig, run_embed
    from eoreps.evaluation.retrieve import RetrieveConfig, run_retrieve

    emb_dir = out / "embeddings"
    run_embed(EmbedConfig(backbone=str(run), data=data, out=str(emb_dir), splits=[split], max_samples=n_test,
                          thumbnails="on", seed=seed))
    table = retrieval_rows(emb_dir, split)
    with atomic_path(out / "retrieval.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(out / "retrieval.csv") as tmp:
        table.to_csv(tmp, index=False)
    png, space = embedding_map(
        emb_dir, out / "embedding_map.png", f"Dual-SimCLR embeddings of the {split} split", seed
    )
    shown = run_retrieve(RetrieveConfig(embeddings=str(emb_dir), query="s1", gallery="s2", space=space,
                                        splits=[split], examples=4, out=str(out / "retrieval")))
    n = int(table["queries"].iloc[0])
    note = (
        "The joint space is the output of the exported projection heads, where the contrastive loss meets S1 "
        "and S2 of one location; the backbone features of the two encoders are not aligned, so their "
        "retrieval stays near chance."
        if (table["space"] == "joint").any()
        else "This run exported no projection heads, so only the (unaligned) backbone space is shown."
    )
    figures = [(f"{space} embeddings of S2 and S1 ({split} split), coloured by class and modality", png.name)]
    if shown.figure is not None:
        figures.append(
            (
                f"S1 queries and their top-5 S2 matches ({space} space); green frame: the same location",
                "retrieval/retrieval.png",
            )
        )
    return Section(
        "Cross-modal retrieval and the representation space",
        paragraphs=[
            f"{n} held-out {split}-split samples are embedded from S1 and from S2 by the pretrained "
            "Dual-SimCLR "
            "encoders (as `eoreps embed` does; embeddings in embeddings/); a query retrieves among all of "
            "them in the "
            "other modality, and its true match is the same location. Recall@k and mean rank against chance "
            "(recall@k = k/N, mean rank = (N+1)/2). " + note
        ],
        tables=[(f"S1 <-> S2 retrieval on the held-out {split} split (N = {n})", table[list(COLUMNS)])],
        figures=figures,
    )


def append_markdown(path: Path, section: Section) -> None:
    """Append ``section``'s tables (and figure links) to the markdown file ``path`` (e.g. ``tables.md``)."""
    from eoreps.io import atomic_write_text
    from eoreps.report.tables import markdown_table

    parts = [path.read_text(encoding="utf-8").rstrip() + "\n", f"\n## {section.title}\n", *section.paragraphs]
    for caption, df in section.tables:
        parts += [f"\n{caption}\n", markdown_table(df)]
    parts += [f"\n![{caption}]({png})\n" for caption, png in section.figures]
    atomic_write_text(path, "\n".join(parts))
