"""Maps of a representation space: projection named, subsampling stated, one panel per available colour
key."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import eoreps.report.maps as maps
from eoreps.errors import DataError

sys.path.insert(0, str(Path(__file__).parents[1] / "evaluation"))
from emb_toy import write_toy_embeddings  # noqa: E402


@pytest.fixture()
def captured(monkeypatch):
    figs = []

    def keep(fig, path, dpi=110):  # keep the figure to look at its panels instead of saving it
        figs.append(fig)
        return path

    monkeypatch.setattr(maps, "save_figure", keep)
    monkeypatch.setitem(sys.modules, "umap", None)  # as without the [umap] extra: t-SNE
    return figs


def test_map_panels_legend_colorbar_and_title(tmp_path, captured) -> None:
    emb = write_toy_embeddings(tmp_path / "emb", n_per_split=20, thumbs=False)
    maps.plot_embedding_map(emb, "joint", "s2", color_by=("label", "season", "lat", "date"),
                            out_png=tmp_path / "m.png", max_points=40)
    fig = captured[0]
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["label", "season", "lat"]  # no 'date' column: no panel
    assert [t.get_text() for t in panels[0].get_legend().get_texts()] == ["class0", "class1", "class2"]
    assert len(fig.axes) == 4  # three panels + the colorbar of the continuous latitude
    title = fig._suptitle.get_text()
    assert "t-SNE (seed 0" in title and "40 of 60 points" in title and "synthetic" in title


def test_map_is_written_and_needs_a_colour_key(tmp_path) -> None:
    emb = write_toy_embeddings(tmp_path / "emb", n_per_split=10, thumbs=False)
    png = maps.plot_embedding_map(emb, "backbone", "s1", color_by=("label",))
    assert png == emb / "map_backbone_s1.png" and png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(DataError, match="meta.parquet"):
        maps.plot_embedding_map(emb, "joint", "s2", color_by=("no_such_column",))


def test_map_figure_of_model_embeddings(tmp_path, captured) -> None:
    z = np.random.default_rng(0).normal(size=(25, 6))
    colours = {"test accuracy": np.linspace(0.1, 0.9, 25), "epoch": np.arange(25) % 5, "optimizer":
               pd.Series(["adam", "sgd"] * 12 + ["adam"])}
    maps.map_figure(z, colours, tmp_path / "h.png", "model embeddings")
    titles = [ax.get_title() for ax in captured[0].axes if ax.get_title()]
    assert (
        titles == ["test accuracy", "epoch", "optimizer"] and "25 points" in captured[0]._suptitle.get_text()
    )


def test_one_map_per_modality_in_the_joint_space(tmp_path, captured) -> None:
    emb = write_toy_embeddings(tmp_path / "emb", n_per_split=5, thumbs=False)
    pngs = maps.plot_embedding_maps(emb, color_by=("label",))
    assert [p.name for p in pngs] == ["map_joint_s2.png", "map_joint_s1.png"] and len(captured) == 2
