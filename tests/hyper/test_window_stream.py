"""Windows streamed from the zoo's shards (hyper/window_stream.py): the same parts and scaler as the in-memory
path, a fit that never loads the zoo's weight matrix, and its bad inputs (one line, exit 2)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

# the windowed fit options and the one-line error check (exit 2, one line naming the text, no traceback)
from test_window_pipeline import FIT, _fails

from eoreps.cli import main
from eoreps.errors import DataError
from eoreps.hyper.window_parts import (
    parts_from_flat,
    permute_parts,
    permuted_tokens,
    tokenize_parts,
    touched_tensors,
)
from eoreps.hyper.window_stream import ShardReader, WindowPartsDataset, streaming_scaler
from eoreps.hyper.window_tokens import TensorScaler, WindowTokenizer
from eoreps.zoo.modelzoo import ModelZoo


def _reader(zoo: ModelZoo) -> ShardReader:
    return ShardReader(zoo.store, zoo.num_params, zoo.index["shard"].astype(str).tolist())


def test_streamed_scaler_and_parts_equal_those_of_the_weight_matrix(tiny_zoo):
    zoo = ModelZoo(tiny_zoo)
    tok = WindowTokenizer(zoo.param_order, 32)
    W = zoo.weights_matrix()
    rows = zoo.index.iloc[::3]  # checkpoints of several shards, not in shard order
    sel = torch.as_tensor(rows.index.to_numpy().copy())
    reader = _reader(zoo)
    got, want = streaming_scaler(tok, reader, rows), TensorScaler.fit(tok, W[sel])
    torch.testing.assert_close(got.mean, want.mean, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(got.std, want.std, rtol=1e-5, atol=1e-7)
    ds = WindowPartsDataset(tok, 16, reader, rows)
    for start in (0, 7, tok.n_tokens - 16):
        idx = (4, 0, 9)
        parts, ref = ds[(start, idx)], parts_from_flat(tok, W[sel][list(idx)], start, 16)
        assert parts.tensors == ref.tensors and parts.batch == 3
        for a, b in zip(parts.values, ref.values, strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("arch", ["cnn_s", "cnn-tiny"])
def test_permuted_tokens_equal_the_tokens_of_the_permuted_parts(arch):
    """The views' tokens gathered through the permutations equal those of the permuted copy, draw for draw
    (rows, input columns, BatchNorm rows, a linear after a flatten)."""
    from eoreps.models.registry import create_backbone
    from eoreps.zoo.architectures import make_arch

    if arch == "cnn_s":
        tok = WindowTokenizer(make_arch("cnn_s", (1, 28, 28), 10).param_shapes(), 16)
    else:
        tok = WindowTokenizer.from_state_dict(create_backbone("cnn-tiny", in_chans=3), 16)
    assert tok.chains
    W = torch.randn(3, tok.num_params)
    for start in range(0, tok.n_tokens - 8, 3):
        parts = parts_from_flat(tok, W, start, 8)
        got = permuted_tokens(tok, parts, torch.Generator().manual_seed(start))
        want = tokenize_parts(tok, permute_parts(tok, parts, torch.Generator().manual_seed(start)))
        assert torch.equal(got, want), start


def _fit(zoo: Path, out: Path, capsys, *extra: str) -> str:
    with pytest.raises(SystemExit) as e:
        main(["hyper", "fit", "--zoo", str(zoo), "--out", str(out), *FIT, *extra])
    assert e.value.code in (0, None)
    return capsys.readouterr().out


def test_a_streamed_fit_never_loads_the_weight_matrix_and_resumes(tiny_zoo, tmp_path, capsys, monkeypatch):
    def refuse(self):  # the (N, D) matrix of the in-memory path
        raise AssertionError("weights_matrix called by a streamed fit")

    monkeypatch.setattr(ModelZoo, "weights_matrix", refuse)
    out = tmp_path / "rep"
    text = _fit(tiny_zoo, out, capsys, "--window-data", "stream")
    # 36 training checkpoints / batch 8 = 4 steps per epoch, as the in-memory loader (test_window_pipeline)
    assert re.search(r"steps\s+8\n", text)
    meta = json.loads((out / "hyper.json").read_text())
    assert meta["tokenizer"] == "window" and meta["config"]["window_data"] == "stream"
    text = _fit(tiny_zoo, out, capsys, "--window-data", "stream", "--epochs", "3")
    assert re.search(r"epochs\s+3\n", text) and re.search(r"steps\s+12\n", text)
    monkeypatch.undo()
    from eoreps.hyper.representation import load_representation

    rep = load_representation(out)
    z = rep.embed(ModelZoo(tiny_zoo).weights_matrix()[:2])
    assert z.shape == (2, rep.latent_dim) and torch.isfinite(z).all()


def test_auto_streams_above_the_size_limit_only(monkeypatch):
    from eoreps.hyper import window_stream
    from eoreps.hyper.train import FitConfig

    cfg = FitConfig(zoo=Path("z"), out=Path("o"), tokenizer="window")
    assert not window_stream.streams(cfg, 11_186_112, 5)  # 224 MB of weights: in memory
    assert window_stream.streams(cfg, 11_186_112, 6)  # 268 MB: streamed
    cfg.window_data = "memory"
    assert not window_stream.streams(cfg, 11_186_112, 1000)
    cfg.window_data, cfg.tokenizer = "auto", "neuron"
    assert not window_stream.streams(cfg, 11_186_112, 1000)


def _first_shard(zoo: Path) -> tuple[pd.DataFrame, str]:
    idx = pd.read_parquet(zoo / "index.parquet")
    return idx, str(idx["shard"].iloc[0])


def test_a_checkpoint_missing_from_a_shard_is_one_line(tiny_zoo, tmp_path, capsys):
    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_zoo, zoo)
    idx, shard = _first_shard(zoo)
    idx.loc[idx["shard"] == shard, "row"] += 1000  # the index lists rows the shard does not hold
    idx.to_parquet(zoo / "index.parquet", index=False)
    line = _fails(["hyper", "fit", "--zoo", str(zoo), "--out", str(tmp_path / "r"), *FIT, "--window-data",
                   "stream"], capsys, shard)
    assert "the index wants row" in line


def test_a_truncated_shard_is_one_line(tiny_zoo, tmp_path, capsys):
    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_zoo, zoo)
    _, shard = _first_shard(zoo)
    path = zoo / "shards" / shard
    path.write_bytes(path.read_bytes()[:-400])
    line = _fails(["hyper", "fit", "--zoo", str(zoo), "--out", str(tmp_path / "r"), *FIT, "--window-data",
                   "stream"], capsys, str(path))
    assert "corrupt" in line
    # a truncated shard whose checksum was re-recorded: the reader's own size check names it
    from eoreps.digest import file_sha256

    sums = json.loads((zoo / "checksums.json").read_text())
    sums[shard] = file_sha256(path)
    (zoo / "checksums.json").write_text(json.dumps(sums))
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*truncated"):
        _reader(ModelZoo(zoo))


def test_bad_window_data_options_are_one_line(tiny_zoo, tmp_path, capsys):
    line = _fails(["hyper", "fit", "--zoo", str(tiny_zoo), "--out", str(tmp_path / "r"), *FIT,
                   "--window-data", "disk"], capsys, "window-data 'disk'")
    assert "stream" in line
    _fails(["hyper", "fit", "--zoo", str(tiny_zoo), "--out", str(tmp_path / "r"), "--window-data", "stream",
            "--quick"], capsys, "tokenizer 'window'")


@pytest.mark.parametrize("permute", [False, True])
def test_streamed_views_are_the_views_of_each_checkpoint_built_alone(tiny_zoo, permute):
    """WindowViewsDataset: per checkpoint, the tokens of its window (permute off) or two permutations drawn
    for it alone, in checkpoint order within a shard (the same draws as permuted_tokens on that checkpoint's
    parts)."""
    from eoreps.hyper.window_parts import RawViews
    from eoreps.hyper.window_stream import WindowViewsDataset
    from eoreps.hyper.window_tokens import candidate_chains

    zoo = ModelZoo(tiny_zoo)
    tok = WindowTokenizer(zoo.param_order, 32)
    tok.chains = candidate_chains(tok) if permute else []
    W = zoo.weights_matrix()
    rows = zoo.index.iloc[::3]
    sel = torch.as_tensor(rows.index.to_numpy().copy())
    ds = WindowViewsDataset(tok, 16, _reader(zoo), rows, permute)
    idx = (4, 0, 9)
    for start in (0, 7, tok.n_tokens - 16):
        torch.manual_seed(start)
        got = ds[(start, idx)]
        assert isinstance(got, RawViews) and got.batch == 3 and got.view1.shape == (3, 16, 32)
        torch.manual_seed(start)
        for b, i in enumerate(idx):
            parts = parts_from_flat(tok, W[sel][[i]], start, 16)
            for view in (got.view1, got.view2):
                want = permuted_tokens(tok, parts) if permute else tokenize_parts(tok, parts)
                assert torch.equal(view[b], want[0])
        if permute and any(tok.layers[a].tensors[0] in parts.tensors for a, _ in tok.chains):
            assert not torch.equal(got.view1, got.view2)  # two draws, not one


def test_streamed_views_read_only_the_rows_the_draws_need(tiny_zoo, monkeypatch):
    """WindowViewsDataset reads the rows source_rows names for its two draws, not the window's whole tensors
    (counted at the reader), and its views still equal those built from the whole tensors (test above)."""
    from eoreps.hyper.window_stream import WindowViewsDataset
    from eoreps.hyper.window_tokens import candidate_chains

    zoo = ModelZoo(tiny_zoo)
    tok = WindowTokenizer(zoo.param_order, 32)
    tok.chains = candidate_chains(tok)
    reader = _reader(zoo)
    read = []
    real = reader.read_into
    monkeypatch.setattr(reader, "read_into", lambda f, shard, r, o, out: (read.append(out.numel()),
                                                                          real(f, shard, r, o, out)))
    import eoreps.hyper.window_stream as window_stream
    from eoreps.hyper.window_parts import draw_permutations, source_rows, values_per_row

    monkeypatch.setattr(window_stream, "WHOLE_VALUES", 0)  # the tiny zoo's tensors are all small
    monkeypatch.setattr(window_stream, "ROWS_ABOVE", 0)
    ds = WindowViewsDataset(tok, 16, reader, zoo.index.iloc[::3], True)
    fewer = 0
    for start in range(0, tok.n_tokens - 16, 7):
        read.clear()
        torch.manual_seed(start)
        ds[(start, (0, 1))]
        torch.manual_seed(start)  # the same two draws per checkpoint: exactly the union of their rows
        want = 0
        for _ in range(2):
            r1, r2 = (source_rows(tok, start, 16, draw_permutations(tok, start, 16, 1)) for _ in range(2))
            want += sum(len(torch.unique(torch.cat([r1[j], r2[j]]))) * values_per_row(tok, j) for j in r1)
        whole = 2 * sum(tok.sizes[j] for j in touched_tensors(tok, start, 16))
        assert sum(read) == want <= whole
        fewer += want < whole
    assert fewer > 0


def test_small_tensors_are_read_whole(tiny_zoo, monkeypatch):
    """At the default WHOLE_VALUES / ROWS_ABOVE every tensor and window of the tiny zoo is small: the
    rows-only loader reads what the whole-tensor one reads (one read per tensor)."""
    from eoreps.hyper.window_stream import WHOLE_VALUES, WindowViewsDataset
    from eoreps.hyper.window_tokens import candidate_chains

    zoo = ModelZoo(tiny_zoo)
    tok = WindowTokenizer(zoo.param_order, 32)
    tok.chains = candidate_chains(tok)
    assert max(tok.sizes) <= WHOLE_VALUES
    reader = _reader(zoo)
    read = []
    real = reader.read_into
    monkeypatch.setattr(reader, "read_into", lambda f, shard, r, o, out: (read.append(out.numel()),
                                                                          real(f, shard, r, o, out)))
    ds = WindowViewsDataset(tok, 16, reader, zoo.index.iloc[::3], True)
    ds[(7, (0, 1))]
    assert sorted(read) == sorted(2 * [tok.sizes[j] for j in touched_tensors(tok, 7, 16)])
