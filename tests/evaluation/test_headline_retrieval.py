"""The demo report gains S1 <-> S2 retrieval against chance and a map (run_headline on a tiny plan)."""

from __future__ import annotations

import pandas as pd
import pytest

from eoreps.evaluation import headline


@pytest.fixture(scope="module")
def simeo_folder(tmp_path_factory):
    from eoreps.data.simeo import write_simeo

    return write_simeo(tmp_path_factory.mktemp("simeo") / "tiny", n=160, seed=3)


def test_demo_report_has_retrieval_table_and_map(simeo_folder, tmp_path, monkeypatch) -> None:
    tiny = headline.HeadlinePlan(simeo_n=160, pretrain_epochs=1, pretrain_samples=64,
                                 limits={"train": 60, "val": 30, "test": 40}, fractions=[1.0], seeds=1,
                                 protocols=["linear"], supervised=["s2"], steps=(1, 1, 2), arch="cnn-tiny",
                                 batch_size=16)
    monkeypatch.setattr(headline, "plan", lambda quick, full: tiny)
    report = headline.run_headline(tmp_path / "demo", quick=True, data=str(simeo_folder))
    html = report.read_text(encoding="utf-8")
    assert "Cross-modal retrieval and the representation space" in html
    for column in ("recall@1", "chance_recall@1", "mean_rank", "chance_mean_rank"):
        assert f"<th>{column}</th>" in html
    assert (
        "src='embedding_map.png'" in html and (tmp_path / "demo" / "embedding_map.png").stat().st_size > 1000
    )
    table = pd.read_csv(tmp_path / "demo" / "retrieval.csv")
    assert set(table["space"]) == {"joint", "backbone"}  # the run exported its projection heads
    assert sorted(zip(table["query"], table["gallery"], strict=True)) == [
        ("s1", "s2"),
        ("s1", "s2"),
        ("s2", "s1"),
        ("s2", "s1"),
    ]
    n = int(table["queries"].iloc[0])  # every test sample (at most the limit of 40) queries all n partners
    assert 10 <= n <= 40 and (table["queries"] == n).all() and (table["candidates"] == n).all()
    assert table["chance_recall@1"].tolist() == pytest.approx([1 / n] * 4)
    assert table["chance_mean_rank"].tolist() == pytest.approx([(n + 1) / 2] * 4)
    assert (
        "src='retrieval/retrieval.png'" in html
        and (tmp_path / "demo" / "retrieval" / "retrieval.png").is_file()
    )
    md = (tmp_path / "demo" / "tables.md").read_text(encoding="utf-8")
    assert "## Cross-modal retrieval" in md and "chance_recall@1" in md
