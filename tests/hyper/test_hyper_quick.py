"""``hyper evaluate --quick`` / ``hyper sample --quick``: smaller runs, said to be smoke runs everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eoreps.cli import main
from eoreps.hyper.autoencoder import ModelConfig
from eoreps.hyper.train import FitConfig, fit


@pytest.fixture(scope="module")
def small_rep(tiny_zoo, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("qrep") / "rep"
    fit(
        FitConfig(
            zoo=tiny_zoo,
            out=out,
            epochs=1,
            batch_size=8,
            model=ModelConfig(d_model=32, n_heads=2, enc_layers=1, dec_layers=1, latent_dim=8, proj_dim=8),
        )
    )
    return out


def _run(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code in (0, None)
    return capsys.readouterr().out


def _hyper(command: str, zoo: Path, rep: Path, out: Path, capsys, *extra: str) -> str:
    """``eoreps hyper <command> --zoo --rep --out [extra]``; its stdout."""
    return _run(["hyper", command, "--zoo", str(zoo), "--rep", str(rep), "--out", str(out), *extra], capsys)


def test_hyper_evaluate_quick_is_a_marked_smoke_run(small_rep, tiny_zoo, tmp_path, capsys):
    out = _hyper("evaluate", tiny_zoo, small_rep, tmp_path / "e", capsys, "--quick")
    assert "--quick: max-rows 6000 -> 500" in out
    assert out.count("(smoke run: ") == 2  # above the property table and the model-selection table
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert summary["smoke"] is True and "test models" in summary["smoke_note"]
    for f in ("properties.md", "model_selection.md"):
        assert "not a measurement" in (tmp_path / "e" / f).read_text()


def test_hyper_evaluate_quick_keeps_given_max_rows(small_rep, tiny_zoo, tmp_path, capsys):
    out = _hyper("evaluate", tiny_zoo, small_rep, tmp_path / "e", capsys, "--quick", "--max-rows", "100")
    assert "max-rows" not in out and "(smoke run: " in out


def test_full_hyper_evaluate_is_not_marked(small_rep, tiny_zoo, tmp_path, capsys):
    out = _hyper("evaluate", tiny_zoo, small_rep, tmp_path / "e", capsys)
    assert "smoke" not in out.lower()
    assert json.loads((tmp_path / "e" / "summary.json").read_text())["smoke"] is False


def test_hyper_sample_quick_is_small_and_marked(small_rep, tiny_zoo, tmp_path, capsys):
    out = _hyper("sample", tiny_zoo, small_rep, tmp_path / "s", capsys, "--quick")
    assert "--quick: n 50 -> 4, top-k 30 -> 8, epochs 0,1,5 -> 0,1" in out
    assert "(smoke run: 4 sampled models" in out
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["smoke"] is True and summary["n"] == 4
    assert "epoch 5" not in (tmp_path / "s" / "sample.md").read_text()


def test_hyper_evaluate_plot_draws_the_model_map(small_rep, tiny_zoo, tmp_path, capsys, monkeypatch):
    import eoreps.report.maps as maps

    panels = []
    real = maps.save_figure
    monkeypatch.setattr(maps, "save_figure", lambda fig, path: (panels.extend(
        ax.get_title() for ax in fig.axes if ax.get_title()), real(fig, path))[1])
    out = _run(
        [
            "hyper",
            "evaluate",
            "--zoo",
            str(tiny_zoo),
            "--rep",
            str(small_rep),
            "--out",
            str(tmp_path / "e"),
            "--quick",
            "--plot",
        ],
        capsys,
    )
    assert "model_map.png" in out and (tmp_path / "e" / "model_map.png").read_bytes()[:4] == b"\x89PNG"
    assert panels[:2] == ["test accuracy", "epoch"]  # then the hyperparameters that vary in the zoo
