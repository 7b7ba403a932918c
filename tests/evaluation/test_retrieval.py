"""Retrieval metrics against slow literal loops, and `eoreps retrieve` on a toy embedding folder."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from emb_toy import write_toy_embeddings

from eoreps.cli import main
from eoreps.evaluation.retrieval import (
    chance_mean_rank,
    chance_recall,
    cross_modal_ranks,
    first_hit_ranks,
    label_ranks,
    summarize,
)


def _cos(a, b) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (
        math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    )


def _slow_first_hit(q, g, relevant, exclude=None) -> list[float]:
    """Sort the gallery by similarity, irrelevant items first among equals (pessimistic); 1 + first
    relevant."""
    out = []
    for i in range(len(q)):
        cand = [j for j in range(len(g)) if exclude is None or j != exclude[i]]
        order = sorted(cand, key=lambda j: (-_cos(q[i], g[j]), bool(relevant[i][j])))
        hits = [pos for pos, j in enumerate(order) if relevant[i][j]]
        out.append(float(hits[0] + 1) if hits else float("nan"))
    return out


def test_cross_modal_ranks_match_a_literal_loop() -> None:
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(23, 5)), rng.normal(size=(23, 5))
    g[:10] = q[:10] + 0.1 * rng.normal(size=(10, 5))
    ranks = cross_modal_ranks(q, g, block=7)  # several blocks
    assert ranks.dtype == np.int64
    assert ranks.tolist() == _slow_first_hit(q.tolist(), g.tolist(), np.eye(23, dtype=bool).tolist())
    perm = rng.permutation(23)  # an explicit match index: the same ranks after shuffling the gallery
    inv = np.argsort(perm)
    assert cross_modal_ranks(q, g[perm], match=inv).tolist() == ranks.tolist()


def test_ties_count_pessimistically() -> None:
    # exact similarities: the true match ties with two other gallery items -> rank 3, not 1
    q = np.array([[1.0, 0.0, 0.0]])
    g = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert cross_modal_ranks(q, g, match=np.array([1])).tolist() == [3]
    rel = np.array([[False, True, False, False]])
    assert (
        first_hit_ranks(q, g, rel).tolist() == _slow_first_hit(q.tolist(), g.tolist(), rel.tolist()) == [3.0]
    )


def test_label_ranks_with_self_excluded_match_a_literal_loop() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(30, 4))
    multi = (rng.random((30, 5)) < 0.25).astype(np.float32)
    multi[0] = 0  # a query sharing no label: NaN rank
    rel = ((multi @ multi.T) > 0)
    exclude = np.arange(30)
    ranks = label_ranks(z, z, multi, multi, exclude=exclude, block=8)
    slow = _slow_first_hit(z.tolist(), z.tolist(), rel.tolist(), exclude.tolist())
    np.testing.assert_array_equal(ranks, np.array(slow))
    assert np.isnan(ranks[0])


def test_recall_and_chance_match_literal_formulas() -> None:
    ranks = np.array([1, 2, 7, 12, 1, 30], dtype=float)
    row = summarize(ranks, 30, 1)
    assert row["recall@1"] == pytest.approx(2 / 6) and row["recall@5"] == pytest.approx(3 / 6)
    assert row["recall@10"] == pytest.approx(4 / 6) and row["median_rank"] == pytest.approx(4.5)
    assert row["mean_rank"] == pytest.approx(53 / 6)
    assert row["chance_recall@1"] == pytest.approx(1 / 30) and row["chance_recall@10"] == pytest.approx(
        10 / 30
    )
    assert row["chance_mean_rank"] == pytest.approx(31 / 2)
    for n, r, k in [(20, 3, 5), (9, 4, 1), (12, 1, 10), (6, 6, 2), (5, 2, 10)]:
        literal = 1 - math.comb(n - r, k) / math.comb(n, k) if k <= n else 1.0
        assert float(chance_recall(n, r, k)) == pytest.approx(literal)
        # E[first relevant position] of a random order, summed literally over positions
        expect = sum(m * math.comb(n - m, r - 1) / math.comb(n, r) for m in range(1, n - r + 2))
        assert float(chance_mean_rank(n, r)) == pytest.approx(expect)


def _run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code, capsys.readouterr()


def _retrieve_s2(emb, out, capsys, *extra: str):
    """``eoreps retrieve`` with s2 queries in an s2 gallery: its exit code and captured output."""
    return _run(["retrieve", "--embeddings", str(emb), "--query", "s2", "--gallery", "s2", *extra,
                 "--out", str(out)], capsys)


def test_retrieve_cross_modal_per_split_table_and_figure(tmp_path, capsys) -> None:
    emb = write_toy_embeddings(tmp_path / "emb")
    out = tmp_path / "ret"
    code, cap = _run(["retrieve", "--embeddings", str(emb), "--query", "s1", "--gallery", "s2",
                      "--out", str(out)], capsys)
    assert code == 0, cap.err
    df = pd.read_csv(out / "retrieval.csv")
    assert df["split"].tolist() == ["train", "val", "test"] and set(df["space"]) == {"joint"}
    assert (df["candidates"] == 30).all() and df["chance_recall@1"].tolist() == pytest.approx([1 / 30] * 3)
    assert df["chance_mean_rank"].tolist() == pytest.approx([15.5] * 3)
    assert (df["recall@1"] > 0.5).all()  # joint space aligned: far above chance
    md = (out / "retrieval.md").read_text()
    assert "chance_recall@1" in md and "Synthetic data" in md and "retrieval.png" in md
    assert (out / "retrieval.png").stat().st_size > 1000 and "recall@1" in cap.out
    assert pd.read_parquet(out / "retrieval.parquet").shape == df.shape
    # backbone space: separate encoders, near chance
    code, cap = _run(["retrieve", "--embeddings", str(emb), "--space", "backbone", "--splits", "test",
                      "--out", str(tmp_path / "bb")], capsys)
    bb = pd.read_csv(tmp_path / "bb" / "retrieval.csv")
    assert code == 0 and bb["split"].tolist() == ["test"] and bb["recall@1"].iloc[0] < 0.3


def test_retrieve_same_modality_by_label_and_no_thumbs_note(tmp_path, capsys) -> None:
    emb = write_toy_embeddings(tmp_path / "emb", thumbs=False)
    out = tmp_path / "ret"
    code, cap = _retrieve_s2(emb, out, capsys, "--splits", "test")
    assert code == 0, cap.err
    row = pd.read_csv(out / "retrieval.csv").iloc[0]
    assert row["match"] == "label" and row["candidates"] == 29  # the query itself is left out
    assert row["recall@1"] > row["chance_recall@1"] and 0 < row["chance_recall@1"] < 1
    assert not (out / "retrieval.png").exists()
    assert "no thumbnail figure" in (out / "retrieval.md").read_text()


def _corrupt(kind: str, emb, tmp_path):
    """Make one bad input; return (extra argv, the path the error must name)."""
    if kind == "other-run":
        other = write_toy_embeddings(tmp_path / "emb2", run_id="run-b")
        return ["--gallery-embeddings", str(other)], other / "embed.json"
    if kind == "modality":
        return ["--query", "dem"], emb / "embed.json"
    if kind == "no-ids":
        pd.read_parquet(emb / "meta.parquet").drop(columns=["id"]).to_parquet(emb / "meta.parquet")
        return [], emb / "meta.parquet"
    if kind == "empty-split":
        return ["--splits", "holdout"], emb / "meta.parquet"
    if kind == "missing-npy":
        (emb / "joint_s2.npy").unlink()
        return [], emb / "joint_s2.npy"
    if kind == "corrupt-npy":
        (emb / "joint_s1.npy").write_bytes(b"not a numpy file")
        return [], emb / "joint_s1.npy"
    if kind == "n-mismatch":
        np.save(emb / "joint_s2.npy", np.zeros((5, 8), np.float32))
        return [], emb / "joint_s2.npy"
    if kind == "no-index":
        (emb / "embed.json").unlink()
        return [], emb
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "other-run",
        "modality",
        "no-ids",
        "empty-split",
        "missing-npy",
        "corrupt-npy",
        "n-mismatch",
        "no-index",
    ],
)
def test_bad_embeddings_are_one_line_errors(kind, tmp_path, capsys) -> None:
    emb = write_toy_embeddings(tmp_path / "emb", n_per_split=6, thumbs=False)
    extra, path = _corrupt(kind, emb, tmp_path)
    code, cap = _run(["retrieve", "--embeddings", str(emb), "--out", str(tmp_path / "out"), *extra], capsys)
    lines = [ln for ln in cap.err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in cap.err, cap.err
    assert lines[0].startswith("eoreps: error: ") and str(path) in lines[0], lines[0]


def test_same_run_in_two_folders_is_accepted(tmp_path, capsys) -> None:
    emb = write_toy_embeddings(tmp_path / "emb", n_per_split=6, thumbs=False)
    other = write_toy_embeddings(tmp_path / "emb2", n_per_split=6, thumbs=False)
    code, cap = _run(
        [
            "retrieve",
            "--embeddings",
            str(emb),
            "--gallery-embeddings",
            str(other),
            "--splits",
            "test",
            "--out",
            str(tmp_path / "out"),
        ],
        capsys,
    )
    assert code == 0, cap.err
    assert json.loads((other / "embed.json").read_text())["run_id"] == "run-a"
    assert pd.read_csv(tmp_path / "out" / "retrieval.csv")["recall@1"].iloc[0] > 0.5


def test_multilabel_retrieval_counts_shared_labels(tmp_path, capsys) -> None:
    from eoreps.evaluation.embedding_store import EmbeddingFolder

    emb = write_toy_embeddings(tmp_path / "emb", n_per_split=8, thumbs=False)
    meta = pd.read_parquet(emb / "meta.parquet")
    names = ["forest;water", "water", "urban", "", "forest", "urban;crops", "crops", "water;urban"]
    meta["labels"] = names * 3
    meta.to_parquet(emb / "meta.parquet", index=False)
    labels, classes = EmbeddingFolder.open(emb).label_matrix()
    assert classes == ["crops", "forest", "urban", "water"] and labels[:8].sum(axis=1).tolist() == [
        2,
        1,
        1,
        0,
        1,
        2,
        1,
        2,
    ]
    code, cap = _retrieve_s2(emb, tmp_path / "out", capsys, "--splits", "test")
    assert code == 0, cap.err
    row = pd.read_csv(tmp_path / "out" / "retrieval.csv").iloc[0]
    # 7 queries have a label; sample 3 has none and is left out
    assert row["queries"] == 7 and row["no_relevant"] == 1
    rel = [sum(bool(set(a.split(";")) & set(b.split(";")) - {""}) for j, b in enumerate(names) if j != i)
           for i, a in enumerate(names) if a]
    assert row["chance_recall@1"] == pytest.approx(sum(r / 7 for r in rel) / 7)


def test_match_by_id_within_one_modality_is_refused(tmp_path, capsys) -> None:
    emb = write_toy_embeddings(tmp_path / "emb", n_per_split=4, thumbs=False)
    code, cap = _retrieve_s2(emb, tmp_path / "out", capsys, "--match", "id")
    assert code == 2 and cap.err.count("\n") == 1 and "--match label" in cap.err


def test_figure_examples_frame_the_true_match(tmp_path) -> None:
    from eoreps.evaluation.retrieve import RetrieveConfig, run_retrieve

    emb = write_toy_embeddings(tmp_path / "emb", n_per_split=10)
    res = run_retrieve(
        RetrieveConfig(embeddings=str(emb), splits=["val"], examples=3, out=str(tmp_path / "o"))
    )
    assert [e["query_row"] for e in res.examples] == [10, 11, 12]  # the first val queries
    for e in res.examples:  # aligned joint space: the same sample comes first, and only it is correct
        assert e["top"][0] == e["query_row"] and e["correct"] == [True, False, False, False, False]
    assert res.figure == tmp_path / "o" / "retrieval.png" and res.note == ""
