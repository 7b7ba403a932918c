"""Fuzz the CLI with bad input: every case must end in ONE line on stderr that names the culprit (file,
key, option or value), exit code 2, no traceback, and leave every file of the user's exactly as it was
(no file changed, added or removed).

Inputs live in one workspace whose files are hashed (and their mtimes read) before and after each case;
outputs go to fresh folders outside it. Cases run in-process through :func:`eoreps.cli.main`
(fast); a few also run as a real subprocess (the installed entry point, interpreter start-up included).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eoreps.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from make_geotiff_folder import write_geotiff_folder  # noqa: E402

# (id, argv, what the error line must name) -- "{w}" is the input workspace, "{o}" a fresh output folder
# outside it. Each case is distinct and fails before any training (they all run in about a second).
CASES: list[tuple[str, str, str]] = [
    # --out that cannot be an output folder
    ("fit-out-file", "fit --quick --out {w}/afile", "{w}/afile"),
    ("fit-out-under-file", "fit --quick --out {w}/afile/sub/run", "{w}/afile/sub/run"),
    ("pretrain-out-file", "pretrain --quick --out {w}/afile", "{w}/afile"),
    ("zoo-build-out-file", "zoo build --quick --out {w}/afile", "{w}/afile"),
    ("evaluate-out-file", "evaluate --quick --out {w}/afile", "{w}/afile"),
    ("demo-out-file", "demo --quick --out {w}/afile", "{w}/afile"),
    ("experiment-fusion-out-file", "experiment fusion --quick --out {w}/afile", "{w}/afile"),
    (
        "experiment-weak-out-under-file",
        "experiment weak-supervision --quick --out {w}/afile/x",
        "{w}/afile/x",
    ),
    ("experiment-multitask-out-file", "experiment multitask --quick --out {w}/afile", "{w}/afile"),
    (
        "experiment-uncertainty-out-under-file",
        "experiment uncertainty --quick --out {w}/afile/u",
        "{w}/afile/u",
    ),
    ("study-out-file", "study label-efficiency --config {w}/list.yaml --out {w}/afile", "{w}/afile"),
    ("hyper-fit-out-file", "hyper fit --zoo {w}/zoo --out {w}/afile", "{w}/afile"),
    (
        "hyper-evaluate-out-file",
        "hyper evaluate --zoo {w}/zoo --rep {w}/empty_dir --out {w}/afile",
        "{w}/afile",
    ),
    ("hyper-sample-out-file", "hyper sample --zoo {w}/zoo --rep {w}/empty_dir --out {w}/afile", "{w}/afile"),
    ("hyper-demo-out-file", "hyper demo --quick --out {w}/afile", "{w}/afile"),
    ("data-generate-out-under-file", "data generate --n 4 --out {w}/afile/simeo", "{w}/afile/simeo"),
    ("zoo-inspect-out-file", "zoo inspect {w}/zoo --out {w}/afile", "{w}/afile"),
    ("zoo-prune-out-file", "zoo prune {w}/zoo --out {w}/afile", "{w}/afile"),
    # data files and folders
    ("inspect-missing", "data inspect {w}/missing", "{w}/missing"),
    ("inspect-empty-dir", "data inspect {w}/empty_dir", "{w}/empty_dir"),
    ("inspect-empty-npz", "data inspect {w}/empty.npz", "{w}/empty.npz"),
    ("inspect-garbage-npz", "data inspect {w}/garbage.npz", "{w}/garbage.npz"),
    ("inspect-npz-missing-key", "data inspect {w}/missing_key.npz", "missing arrays s2_20m"),
    ("inspect-corrupt-geotiff", "data inspect {w}/geotiff", "{w}/geotiff/s2/patch_001.tif"),
    ("inspect-file-not-dataset", "data inspect {w}/afile", "{w}/afile"),
    ("pack-missing-source", "data pack {w}/missing --out {o}", "{w}/missing"),
    ("pack-into-non-empty-folder", "data pack {w}/geotiff --out {w}/zoo", "{w}/zoo"),
    ("fit-data-missing", "fit --quick --out {o} --data {w}/missing", "{w}/missing"),
    ("fit-data-garbage-npz", "fit --quick --out {o} --data {w}/garbage.npz", "{w}/garbage.npz"),
    ("fit-data-unrelated-dir", "fit --quick --out {o} --data {w}/zoo", "{w}/zoo"),
    ("pretrain-unknown-loader", "pretrain --quick --loader disk --out {o}", "disk"),
    ("evaluate-unknown-loader", "evaluate --quick --loader disk --out {o}", "disk"),
    ("zoo-build-dataset-missing", "zoo build --quick --out {o} --dataset {w}/missing", "{w}/missing"),
    (
        "zoo-build-dataset-npz-no-arrays",
        "zoo build --quick --out {o} --dataset {w}/zoo_bad.npz",
        "{w}/zoo_bad.npz",
    ),
    ("zoo-build-grid-missing", "zoo build --quick --out {o} --grid {w}/missing.yaml", "{w}/missing.yaml"),
    ("zoo-build-unknown-backbone", "zoo build --quick --out {o} --backbone no-such-net", "no-such-net"),
    ("zoo-build-from-pretraining-missing", "zoo build --out {o} --from-pretraining {w}/missing.yaml",
     "{w}/missing.yaml"),
    ("zoo-build-grid-is-dir", "zoo build --quick --out {o} --grid {w}/empty_dir", "{w}/empty_dir"),
    (
        "zoo-build-grid-bad-key",
        "zoo build --quick --out {o} --grid {w}/unknown_key.yaml",
        "{w}/unknown_key.yaml",
    ),
    (
        "zoo-build-grid-bad-type",
        "zoo build --quick --out {o} --grid {w}/grid_bad_type.yaml",
        "{w}/grid_bad_type.yaml",
    ),
    (
        "zoo-build-grid-negative-models",
        "zoo build --out {o} --grid {w}/grid_negative.yaml",
        "{w}/grid_negative.yaml",
    ),
    ("inspect-negative-max-samples", "data inspect {w}/geotiff --max-samples -1", "--max-samples -1"),
    ("inspect-geotiff-bad-labels-csv", "data inspect {w}/geotiff_bad_csv", "{w}/geotiff_bad_csv/labels.csv"),
    ("fit-regress-without-targets", "fit --quick --out {o} --data {w}/geotiff_ok --task regress", "'target'"),
    (
        "fit-multilabel-on-single-labels",
        "fit --quick --out {o} --data {w}/geotiff_ok --task multilabel",
        "{w}/geotiff_ok: samples have no 'multilabel'",
    ),
    ("fit-data-corrupt-geotiff", "fit --quick --out {o} --data {w}/geotiff", "{w}/geotiff/s2/patch_001.tif"),
    # option values
    ("fit-unknown-task", "fit --quick --out {o} --task segmentify", "'segmentify'"),
    ("fit-unknown-backbone", "fit --quick --out {o} --backbone resnet9000", "'resnet9000'"),
    ("fit-unknown-modality", "fit --quick --out {o} --modalities s2,bogus", "'bogus'"),
    (
        "fit-negative-fraction",
        "fit --quick --out {o} --label-fraction -0.5",
        "--label-fraction -0.5",
    ),  # the library says label_fraction=-0.5
    ("fit-zero-batch", "fit --out {o} --batch-size 0", "--batch-size 0"),
    ("fit-negative-seed", "fit --quick --out {o} --seed -1", "'--seed'"),
    ("fit-negative-workers", "fit --quick --out {o} --num-workers -1", "--num-workers -1"),
    ("pretrain-bad-workers", "pretrain --quick --out {o} --num-workers -2", "--num-workers -2"),
    ("fit-bad-devices", "fit --quick --out {o} --devices x", "--devices x"),
    ("fit-negative-max-train", "fit --out {o} --max-train -5", "--max-train -5"),
    ("fit-negative-lr", "fit --quick --out {o} --lr -1", "--lr -1.0"),
    ("fit-dropout-above-one", "fit --quick --out {o} --dropout 1.5", "--dropout 1.5"),
    ("fit-tpu-accelerator", "fit --quick --out {o} --accelerator tpu", "'tpu'"),
    ("fit-epochs-not-int", "fit --quick --out {o} --epochs ten", "'--epochs'"),
    ("fit-unknown-option", "fit --quick --out {o} --epoch 3", "--epoch"),
    ("pretrain-unknown-method", "pretrain --quick --out {o} --method simclr2", "'simclr2'"),
    ("pretrain-bad-kwargs", "pretrain --quick --out {o} --backbone-kwargs img_size", "'img_size'"),
    ("pretrain-unknown-method-option", "pretrain --quick --out {o} --method-kwargs nosuch=1", "'nosuch'"),
    ("pretrain-unknown-strategy", "pretrain --quick --out {o} --strategy foo", "'foo'"),
    ("pretrain-zero-nodes", "pretrain --quick --out {o} --num-nodes 0", "num_nodes"),
    ("pretrain-negative-max-samples", "pretrain --quick --out {o} --max-samples -1", "max_samples"),
    ("embed-out-file", "embed --backbone {w}/empty_dir --out {w}/afile", "{w}/afile"),
    ("embed-no-encoders", "embed --backbone {w}/empty_dir --quick --out {o}", "{w}/empty_dir"),
    ("embed-no-backbone", "embed --quick --out {o}", "--backbone"),
    ("embed-unknown-space", "embed --backbone {w}/empty_dir --space both --out {o}", "--space both"),
    ("evaluate-unknown-protocol", "evaluate --quick --out {o} --protocol lineal", "'lineal'"),
    ("evaluate-bad-fractions", "evaluate --quick --out {o} --fractions a,b", "'a,b'"),
    ("evaluate-zero-seeds", "evaluate --quick --out {o} --seeds 0", "--seeds 0"),
    ("evaluate-unknown-modality", "evaluate --quick --out {o} --modalities s2,bogus", "bogus"),
    ("experiment-fractional-seeds", "experiment fusion --quick --out {o} --seeds 1.5", "'1.5'"),
    ("zoo-build-negative-threads", "zoo build --quick --out {o} --threads -1", "--threads -1"),
    (
        "zoo-build-dataset-garbage-npz",
        "zoo build --quick --out {o} --dataset {w}/garbage.npz",
        "{w}/garbage.npz",
    ),
    ("zoo-prune-empty-sparsity", "zoo prune {w}/zoo --out {o} --sparsity ,", "--sparsity"),
    ("evaluate-negative-size", "evaluate --quick --out {o} --size -3", "size=-3"),
    ("experiment-bad-seeds", "experiment fusion --quick --out {o} --seeds a", "--seeds"),
    ("demo-quick-and-full", "demo --quick --full --out {o}", "--full"),
    ("zoo-build-negative-epochs", "zoo build --quick --out {o} --epochs -1", "--epochs -1"),
    ("hyper-sample-zero-n", "hyper sample --zoo {w}/zoo --rep {w}/rep_bad --out {o} --n 0", "--n 0"),
    ("hyper-fit-batch-of-one", "hyper fit --quick --zoo {w}/zoo --out {o} --batch-size 1", "--batch-size 1"),
    ("zoo-build-unknown-preset", "zoo build --out {o} --preset mnist-huge", "'mnist-huge'"),
    ("zoo-build-unknown-arch", "zoo build --quick --out {o} --arch cnn_xl", "'cnn_xl'"),
    ("zoo-prune-bad-sparsity", "zoo prune {w}/zoo --out {o} --sparsity 1.5", "1.5"),
    ("zoo-prune-bad-epochs", "zoo prune {w}/zoo --out {o} --epochs last", "'last'"),
    ("data-generate-negative-n", "data generate --out {o} --n -5", "--n -5"),
    ("data-generate-zero-n", "data generate --out {o} --n 0", "--n 0"),
    ("data-generate-negative-scenes", "data generate --out {o} --n 4 --scenes -1", "--scenes -1"),
    ("data-generate-tiny-patch", "data generate --out {o} --n 4 --patch-size 2", "patch_size"),
    ("unknown-command", "fitt --quick", "'fitt'"),
    # configs
    (
        "config-bad-type",
        "fit --quick --out {o} --config {w}/bad_type.yaml",
        "{w}/bad_type.yaml: key 'epochs'",
    ),
    ("config-unknown-key", "fit --quick --out {o} --config {w}/unknown_key.yaml", "{w}/unknown_key.yaml"),
    ("config-not-mapping", "pretrain --quick --out {o} --config {w}/list.yaml", "{w}/list.yaml"),
    ("config-bad-syntax", "zoo build --quick --out {o} --config {w}/syntax.yaml", "{w}/syntax.yaml"),
    ("config-missing", "fit --quick --out {o} --config {w}/missing.yaml", "{w}/missing.yaml"),
    ("config-is-dir", "fit --quick --out {o} --config {w}/empty_dir", "{w}/empty_dir"),
    (
        "study-config-bad-type",
        "study label-efficiency --out {o} --config {w}/study_bad_type.yaml",
        "{w}/study_bad_type.yaml: key 'seeds'",
    ),
    (
        "study-config-nested-bad-type",
        "study label-efficiency --out {o} --config {w}/study_nested.yaml",
        "{w}/study_nested.yaml.data: key 'size'",
    ),
    ("study-config-not-mapping", "study label-efficiency --out {o} --config {w}/list.yaml", "{w}/list.yaml"),
    ("study-backbones-missing", "study label-efficiency --out {o} --config {w}/study_ok.yaml "
     "--backbones random,{w}/nope_backbone", "{w}/nope_backbone"),
    ("study-backbones-no-weights", "study label-efficiency --out {o} --config {w}/study_ok.yaml "
     "--backbones timm:resnet18", "timm:resnet18@FILE"),
    ("study-shots-zero", "study label-efficiency --out {o} --config {w}/study_ok.yaml --shots 1,0", "shots"),
    # checkpoints and backbones
    (
        "evaluate-truncated-backbone",
        "evaluate --quick --out {o} --backbone {w}/truncated.safetensors",
        "{w}/truncated.safetensors",
    ),
    (
        "evaluate-truncated-ckpt",
        "evaluate --quick --out {o} --backbone {w}/truncated.ckpt",
        "{w}/truncated.ckpt",
    ),
    (
        "backbone-import-truncated",
        "backbone import timm:resnet18 --weights {w}/truncated.ckpt --out {o}",
        "{w}/truncated.ckpt",
    ),
    ("backbone-import-missing", "backbone import timm:resnet18 --weights {w}/nope.pth --out {o}",
     "{w}/nope.pth"),
    ("backbone-import-out-file", "backbone import timm:resnet18 --weights {w}/truncated.ckpt --out {w}/afile",
     "{w}/afile"),
    (
        "backbone-import-torchvision-enum",
        "backbone import torchgeo:Swin_V2_B_Weights.NAIP_RGB_MI_SATLAS --weights {w}/truncated.ckpt "
        "--out {o}",
        "torchgeo:Swin_V2_B_Weights.NAIP_RGB_MI_SATLAS",
    ),
    (
        "evaluate-spec-without-weights",
        "evaluate --quick --out {o} --backbone torchgeo:ResNet18_Weights.SENTINEL2_ALL_MOCO",
        "torchgeo:ResNet18_Weights.SENTINEL2_ALL_MOCO",
    ),
    (
        "evaluate-bad-key-map",
        "evaluate --quick --out {o} --backbone timm:resnet18 --weights {w}/truncated.ckpt "
        "--key-map backbone.",
        "backbone.",
    ),
    (
        "pretrain-resume-truncated-ckpt",
        "pretrain --quick --resume --out {w}/pretrain_run",
        "{w}/pretrain_run/checkpoints/last.ckpt",
    ),
    ("fit-rerun-truncated-ckpt", "fit --quick --out {w}/fit_run", "{w}/fit_run/checkpoints/last.ckpt"),
    (
        "evaluate-missing-backbone",
        "evaluate --quick --out {o} --backbone {w}/missing.safetensors",
        "{w}/missing.safetensors",
    ),
    # zoos and representations
    ("zoo-inspect-no-manifest", "zoo inspect {w}/zoo_no_manifest --out {o}", "{w}/zoo_no_manifest"),
    (
        "zoo-inspect-corrupt-index",
        "zoo inspect {w}/zoo_bad_index --out {o}",
        "{w}/zoo_bad_index/index.parquet",
    ),
    (
        "zoo-inspect-corrupt-manifest",
        "zoo inspect {w}/zoo_bad_manifest --out {o}",
        "{w}/zoo_bad_manifest/zoo.json",
    ),
    ("zoo-inspect-a-file", "zoo inspect {w}/afile --out {o}", "{w}/afile"),
    (
        "zoo-inspect-corrupt-shard",
        "zoo inspect {w}/zoo_bad_shard --out {o}",
        "{w}/zoo_bad_shard/shards/c00000-e001.safetensors",
    ),
    (
        "zoo-prune-corrupt-shard",
        "zoo prune {w}/zoo_bad_shard --out {o} --sparsity 0.5",
        "{w}/zoo_bad_shard/shards/c00000-e001.safetensors",
    ),
    (
        "hyper-evaluate-corrupt-rep",
        "hyper evaluate --zoo {w}/zoo --rep {w}/rep_bad --out {o}",
        "{w}/rep_bad/model.safetensors",
    ),
    (
        "hyper-fit-zoo-no-manifest",
        "hyper fit --quick --zoo {w}/zoo_no_manifest --out {o}",
        "{w}/zoo_no_manifest",
    ),
    (
        "hyper-evaluate-empty-rep",
        "hyper evaluate --zoo {w}/zoo --rep {w}/empty_dir --out {o}",
        "{w}/empty_dir",
    ),
    # embeddings (eoreps retrieve; the bad embedding folders themselves: tests/evaluation/test_retrieval.py)
    ("retrieve-not-an-embedding-folder", "retrieve --embeddings {w}/empty_dir --out {o}", "{w}/empty_dir"),
    ("retrieve-out-file", "retrieve --embeddings {w}/empty_dir --out {w}/afile", "{w}/afile"),
    ("retrieve-unknown-space", "retrieve --embeddings {w}/empty_dir --out {o} --space jiont", "'jiont'"),
    ("retrieve-no-embeddings", "retrieve --out {o}", "--embeddings"),
]
SUBPROCESS = ("fit-out-file", "inspect-corrupt-geotiff", "config-bad-type", "zoo-inspect-corrupt-index")


def _write_inputs(w: Path) -> None:
    """Every bad input the cases name, in one folder."""
    from eoreps.zoo.build import BuildConfig, build_zoo
    from eoreps.zoo.grid import load_grid
    from eoreps.zoo.population import TrainOptions

    (w / "afile").write_text("a user's file, not a folder\n")
    (w / "empty_dir").mkdir()
    (w / "empty.npz").write_bytes(b"")
    (w / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip archive" * 4)
    np.savez(w / "missing_key.npz", s2_10m=np.zeros((2, 4, 8, 8), np.float32))
    np.savez(w / "zoo_bad.npz", pixels=np.zeros((4, 8, 8), np.float32))
    write_geotiff_folder(w / "geotiff_ok", n=4, side=8)  # single-label classes only: no targets, masks
    shutil.copytree(w / "geotiff_ok", w / "geotiff")
    shutil.copytree(w / "geotiff_ok", w / "geotiff_bad_csv")
    (w / "geotiff_bad_csv" / "labels.csv").write_text('id,label,split\n"patch_000,forest,train\n')
    tif = w / "geotiff" / "s2" / "patch_001.tif"
    tif.write_bytes(tif.read_bytes()[:300])  # truncated GeoTIFF
    (w / "bad_type.yaml").write_text("epochs: ten\n")
    (w / "unknown_key.yaml").write_text("epoch: 3\n")
    (w / "list.yaml").write_text("- 1\n- 2\n")
    (w / "study_bad_type.yaml").write_text("methods: [{name: r, backbone: random}]\nseeds: three\n")
    (w / "study_nested.yaml").write_text("methods: [{name: r, backbone: random}]\ndata: {size: big}\n")
    (w / "study_ok.yaml").write_text("methods: [{name: r, backbone: random}]\n")
    (w / "syntax.yaml").write_text("epochs: [1, 2\nseed: 0\n")
    (w / "truncated.safetensors").write_bytes(b"\x40\x00\x00\x00\x00\x00\x00\x00{\"weight\": {\"dtype\"")
    (w / "truncated.ckpt").write_bytes(b"PK\x03\x04" + bytes(range(200)))  # a torch zip cut short
    for run in ("pretrain_run", "fit_run"):  # a run killed while writing its checkpoint, rerun to resume
        (w / run / "checkpoints").mkdir(parents=True)
        (w / run / "checkpoints" / "last.ckpt").write_bytes((w / "truncated.ckpt").read_bytes())
    (w / "grid_bad_type.yaml").write_text("seed: abc\n")
    (w / "grid_negative.yaml").write_text("n_models: -3\nsampling: random\n")
    (w / "rep_bad").mkdir()
    (w / "rep_bad" / "hyper.json").write_text("{}")
    (w / "rep_bad" / "model.safetensors").write_bytes(b"\x01\x00")
    zoo = w / "zoo"
    grid = load_grid({"seed": [0], "activation": ["relu"], "init": ["kaiming_normal"], "optimizer": ["adam"],
                      "lr": [1e-2], "weight_decay": [0.0], "dropout": [0.0], "train_fraction": [1.0]})
    build_zoo(BuildConfig(out=zoo, dataset="digits", arch="mlp", grid=grid, epochs=1,
                          options=TrainOptions(precision="fp32")))
    for name in ("zoo_no_manifest", "zoo_bad_index", "zoo_bad_manifest", "zoo_bad_shard"):
        shutil.copytree(zoo, w / name)
    shard = w / "zoo_bad_shard" / "shards" / "c00000-e001.safetensors"  # the last epoch: prune reads it
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF  # one flipped bit in the weights: still parses, fails its checksum
    shard.write_bytes(bytes(data))
    (w / "zoo_no_manifest" / "zoo.json").unlink()
    index = w / "zoo_bad_index" / "index.parquet"
    index.write_bytes(index.read_bytes()[:64])
    (w / "zoo_bad_manifest" / "zoo.json").write_text("{\"format_version\": 1, \"architecture\": ")


def _snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``root``: (mtime_ns, sha256), keyed by relative path."""
    snap = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            snap[str(p.relative_to(root))] = (
                p.stat().st_mtime_ns,
                hashlib.sha256(p.read_bytes()).hexdigest(),
            )
        elif p.is_dir():
            snap[str(p.relative_to(root)) + "/"] = (0, "")
    return snap


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> tuple[Path, dict[str, tuple[int, str]]]:
    w = tmp_path_factory.mktemp("user_inputs")
    _write_inputs(w)
    return w, _snapshot(w)


def _argv(template: str, w: Path, o: Path) -> list[str]:
    return [part.format(w=w, o=o) for part in template.split()]


def _check(code: int, err: str, case: str, named: str, w: Path, before: dict[str, tuple[int, str]]) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (case, code, err)
    assert "Traceback" not in err, (case, err)
    assert len(lines) == 1 and lines[0].startswith("eoreps: error: "), (case, err)
    assert named.format(w=w) in lines[0], (case, named, lines[0])
    assert _snapshot(w) == before, f"{case}: a file of the user's changed"


def test_cases_are_many_and_distinct():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) >= 40
    assert len({c[1] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case, template, named", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    workspace, tmp_path, monkeypatch, capsys, case, template, named
):
    w, before = workspace
    monkeypatch.chdir(tmp_path)  # commands with a default --out write nothing into the repository
    with pytest.raises(SystemExit) as e:
        main(_argv(template, w, tmp_path / "out"))
    _check(e.value.code, capsys.readouterr().err, case, named, w, before)


@pytest.mark.parametrize("case", SUBPROCESS)
def test_bad_input_through_the_installed_command(workspace, tmp_path, case):
    w, before = workspace
    template, named = next(c[1:] for c in CASES if c[0] == case)
    env = {**os.environ, "EOREPS_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "eoreps.cli", *_argv(template, w, tmp_path / "out")],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    _check(r.returncode, r.stderr, case, named, w, before)
