"""The headline study behind ``eoreps demo``: Dual-SimCLR pretraining vs supervised training from scratch.

On SimEO (synthetic; the report says so):

1. **pretrain** one encoder per modality (S2, S1) with the multimodal contrastive method
   (:func:`eoreps.ssl.pretrain.run_pretrain`, ``method="multimodal"``) on the training split, labels unused;
2. **evaluate** at 1 %, 10 % and 100 % of the training labels over 3 seeds (a resumable
   :mod:`eoreps.evaluation.study`): the pretrained pair under a linear probe and full fine-tuning, a random
   initialisation of the same encoders under the linear probe, and supervised training from scratch
   (S2 alone, early fusion, late fusion; ``full`` adds S1 alone) with the same training loop and step budget;
3. **report**: ``report.html`` with the label-efficiency table and plot, the per-class tables (average and
   overall accuracy), and the pretraining summary; ``results.csv`` / ``results.parquet``, ``tables.md``,
   ``label_efficiency.png``; S1 <-> S2 retrieval of the held-out split against chance and a map of the
   embeddings (``retrieval.csv``, ``embedding_map.png``; :mod:`eoreps.evaluation.headline_retrieval`).

Sizes: the default (``cnn-tiny`` encoders) fits in 10 minutes on 2 CPU cores; ``quick`` in about 3; ``full``
runs every protocol (linear, kNN, fine-tuning, adapter) at 1, 10, 20, 50 and 100 % with 5 seeds. Killed runs
resume: the pretraining is skipped when its export exists and finished cells are never recomputed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eoreps.data.pack_cache import check_loader, packed_source
from eoreps.evaluation.encoders import MethodSpec
from eoreps.evaluation.headline_retrieval import append_markdown, retrieval_section
from eoreps.evaluation.study import DataConfig, StudyConfig, collect, run_study, smoke_detail
from eoreps.io import read_json


@dataclass
class HeadlinePlan:
    """Sizes of one headline run (see :func:`plan`)."""

    simeo_n: int
    pretrain_epochs: int
    pretrain_samples: int | None
    limits: dict[str, int]
    fractions: list[float]
    seeds: int
    protocols: list[str]
    supervised: list[str]
    steps: tuple[int, int, int]  # epochs, min_steps, max_steps
    arch: str = "cnn-small"
    batch_size: int = 256  # pretraining batch


def plan(quick: bool, full: bool) -> HeadlinePlan:
    """The default, ``quick`` and ``full`` sizes."""
    if full:
        return HeadlinePlan(simeo_n=6000, pretrain_epochs=60, pretrain_samples=None, limits={},
                            fractions=[0.01, 0.1, 0.2, 0.5, 1.0], seeds=5,
                            protocols=["linear", "knn", "finetune", "adapter"],
                            supervised=["s2", "s1", "early", "late"], steps=(30, 100, 0))
    if quick:
        return HeadlinePlan(
            simeo_n=6000,
            pretrain_epochs=4,
            pretrain_samples=1024,
            limits={"train": 600, "val": 200, "test": 400},
            fractions=[0.01, 0.1, 1.0],
            seeds=3,
            protocols=["linear", "finetune"],
            supervised=["early", "late"],
            steps=(3, 15, 30),
        )
    # The default is sized for <= 10 min on 2 slow cores (measured: docs/evaluation.md). The monitor's kNN
    # accuracy of the Dual-SimCLR encoders plateaus after ~4 epochs on 2,048 samples, hence 8 epochs.
    return HeadlinePlan(simeo_n=6000, pretrain_epochs=8, pretrain_samples=2048,
                        limits={"train": 2000, "val": 500, "test": 1000}, fractions=[0.01, 0.1, 1.0], seeds=3,
                        protocols=["linear", "finetune"], supervised=["s2", "early", "late"],
                        steps=(8, 30, 60), arch="cnn-tiny")


def _simeo_folder(n: int) -> str:
    from eoreps.data.simeo.io import cached_simeo

    return str(cached_simeo(n, seed=0))


def pretrain_dual(out: Path, data: str, p: HeadlinePlan, seed: int,
                  loader: str = "stream") -> tuple[Path, dict[str, Any]]:
    """Multimodal (Dual-SimCLR) pretraining into ``out``; skipped when a finished export is there."""
    from eoreps.ssl.pretrain import PretrainConfig, run_pretrain

    summary = out / "pretrain.json"
    if summary.is_file() and (out / "encoders.json").is_file():
        return out, read_json(summary)
    cfg = PretrainConfig(
        method="multimodal",
        data=data,
        modalities=["s2", "s1"],
        backbone=p.arch,
        epochs=p.pretrain_epochs,
        batch_size=p.batch_size,
        max_samples=p.pretrain_samples,
        seed=seed,
        out=str(out),
        resume=(out / "checkpoints" / "last.ckpt").is_file(),
        knn_train_samples=1000,
        knn_val_samples=300,
        monitor_samples=256,
        loader=loader,
    )
    run_pretrain(cfg)
    return out, read_json(summary)


def headline_config(
    backbone: Path, data: str, p: HeadlinePlan, seed: int, loader: str = "stream"
) -> StudyConfig:
    """The study of the headline run."""
    methods = [MethodSpec("dual-simclr", backbone=str(backbone)),
               MethodSpec("random-init", backbone="random", arch=p.arch, fusion="late", protocols=["linear"])]
    for s in p.supervised:
        mods = [s] if s in ("s2", "s1") else ["s2", "s1"]
        fusion = s if s in ("early", "late") else "early"
        methods.append(
            MethodSpec(f"supervised-{s}", supervised=True, arch=p.arch, modalities=mods, fusion=fusion)
        )
    cfg = StudyConfig(
        name="Label efficiency on SimEO: Dual-SimCLR pretraining vs supervised from scratch",
        data=DataConfig(
            data=data, task="classify", modalities=["s2", "s1"], limits=dict(p.limits), simeo_n=p.simeo_n,
            loader=loader,
        ),
        methods=methods,
        protocols=list(p.protocols),
        fractions=list(p.fractions),
        seeds=p.seeds,
        seed=seed,
    )
    t = cfg.options.train
    t.epochs, t.min_steps, t.max_steps = p.steps
    return cfg


def run_headline(
    out: Path, seed: int = 0, quick: bool = False, full: bool = False, data: str = "simeo",
    loader: str = "stream",
) -> Path:
    """Pretrain, evaluate and report (see the module docstring); returns the path of ``report.html``.

    Args:
        out: output folder (``pretrain/``, ``cells/``, ``cache/``, results, tables, plot, report).
        seed: first seed (pretraining uses it; the study uses ``seed .. seed + seeds - 1``).
        quick: the ~3-minute version.
        full: every protocol and label fraction, 5 seeds.
        data: ``"simeo"`` or a SimEO folder / dataset path with single-label classes and S2 + S1.
        loader: ``"stream"``: the data is packed once (the cache) and pretraining and evaluation stream
            that pack; ``"memory"``: both hold it in memory.
    """
    from eoreps.evaluation.tables import write_study_report
    from eoreps.report import Section

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    p = plan(quick, full)
    t0 = time.perf_counter()
    folder = _simeo_folder(p.simeo_n) if data == "simeo" else data
    if check_loader(loader) == "stream":  # packed here, so the data time below includes it
        packed_source(folder, seed=seed, modalities=("s2", "s1"))
    t_data = time.perf_counter() - t0
    backbone, pre = pretrain_dual(out / "pretrain", folder, p, seed, loader)
    t_pre = time.perf_counter() - t0 - t_data
    cfg = headline_config(backbone, folder, p, seed, loader)
    if quick:
        cfg.smoke = f"{smoke_detail(cfg)}, {p.pretrain_epochs} pretraining epochs"
    run_study(cfg, out)
    t_total = time.perf_counter() - t0
    df = collect(out)
    df = df[df["key"].isin(_keys(cfg))]
    synthetic = bool(df["synthetic"].any())
    mon = pre.get("monitor_history") or [{}]
    knn_keys = {k: v for k, v in mon[-1].items() if "knn" in k}
    intro = Section(
        "What was run",
        paragraphs=[
            f"Pretraining: multimodal contrastive (Dual-SimCLR: one {p.arch} encoder per modality, S2 and "
            "S1; the co-located S1 patch is the second view) on the SimEO training split without labels, "
            f"{pre.get('steps', '?')} steps, {pre.get('wall_time_s', float('nan')):.0f} s; last monitor "
            "entry: "
            + (", ".join(f"{k} {v:.3f}" for k, v in knn_keys.items()) or "n/a")
            + ".",
            "Evaluation: 'linear' = frozen encoders (features concatenated) + logistic regression with C "
            "chosen on the validation split; 'finetune' = encoders at a 10x lower learning rate + new linear "
            "head; 'supervised' = the same architecture from random initialisation, trained end to end with "
            "the same loop, step budget and augmentation. Random-init = the same encoders untrained, linear "
            "probe.",
            f"Wall time of this run: {t_total:.0f} s (data {t_data:.0f} s, pretraining {t_pre:.0f} s; later "
            "runs reuse the cached data, the pretrained encoders and finished cells).",
        ],
    )
    look = retrieval_section(out, backbone, folder, p.limits.get("test"), synthetic, seed=seed)
    report = write_study_report(df, out, title=cfg.name, synthetic=synthetic, data_name=str(data),
                                extra_sections=[intro, look], smoke=cfg.smoke or None)
    append_markdown(out / "tables.md", look)
    return report


def _keys(cfg: StudyConfig) -> set[str]:
    from eoreps.evaluation.study import plan_cells, with_baselines

    return {c.key for c in plan_cells(cfg, with_baselines(cfg))}
