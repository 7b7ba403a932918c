"""``eoreps hyper sample``: hyper-representations as generative models of weights.

1. Anchors: the ``top_k`` best training models of the zoo (each model's best checkpoint by test
   accuracy) of one activation (``--activation``, default that of the best model), since a decoded
   weight vector is loaded into a network with a fixed activation.
2. A Gaussian kernel density estimate (scikit-learn, Scott's bandwidth times ``bandwidth_scale``) is
   fitted on the standardised embeddings of the anchors; ``n`` latents are drawn and decoded to weights.
   A scale below 1 samples closer to the anchors (less diverse, closer to their reconstructions), like
   the truncation of a generative model's prior; 1 is the density estimate itself (the leave-one-out
   likelihood of the MNIST anchors rises all the way up to Scott's bandwidth, docs/hyper.md).
3. The sampled models are evaluated zero-shot and after fine-tuning (the anchors' training recipe:
   optimizer, learning rate, weight decay, the zoo's batch size), against the same number of randomly
   initialised models trained identically, against the zoo's own models of that activation at the
   same epochs, and against a baseline without a representation: the average of the anchors after
   weight matching (:mod:`eoreps.hyper.align`). A diagnostic row, the anchors themselves passed through
   the representation (decode(embed(anchor))), shows how much of a good model the decoder preserves:
   sampled models can hardly do better than these reconstructions.
4. Optionally (``transfer``) the same comparison on another data set of the same input shape.

Sample from a representation fitted with ``hyper fit --align --functional 0.1`` on working models
(``--zoo-query "test_acc >= 0.5"``): with ``--align`` its decoder works in one weight-matched unit order
(digits zero-shot 0.43 against 0.08 from a representation trained with random permutations), and with the
functional loss decoded weights compute what the encoded model computed (full MNIST CNN-s zoo: 0.855
zero-shot against 0.198 from the token MSE alone; docs/hyper.md).

The diversity of the samples (pairwise prediction disagreement and weight distance,
:mod:`eoreps.hyper.diversity`) is reported beside that of the anchors: a decoder can reach a high zero-shot
accuracy by decoding every latent to nearly the same model.

Outputs (under ``out``): ``sample.md``/``sample.csv`` (mean and std of test accuracy per epoch; diversity),
``sample.png``, ``sampled.safetensors`` (the decoded weights) and ``summary.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from eoreps.errors import ConfigError, DataError
from eoreps.hyper.align import fit_reference, match
from eoreps.hyper.augment import Permuter
from eoreps.hyper.diversity import diversity
from eoreps.hyper.finetune import Recipe, finetune_curve, load_transfer_data, random_weights
from eoreps.hyper.options import SampleConfig
from eoreps.hyper.probes import to_markdown
from eoreps.hyper.representation import Representation, load_representation
from eoreps.io import atomic_path, atomic_write_text, write_json
from eoreps.progress import progress
from eoreps.smoke import smoke_fields, smoke_markdown
from eoreps.zoo.datasets import ZooData


def _mode(s: pd.Series) -> Any:
    return s.value_counts().index[0]


def select_anchors(props: pd.DataFrame, splits: dict[int, str], top_k: int, activation: str | None
                   ) -> tuple[pd.DataFrame, str]:
    """Best checkpoint of each training model of ``activation``, top ``top_k`` by test accuracy."""
    p = props
    if splits:
        p = p[p["model_id"].astype(int).map(splits) == "train"]
    if activation is None:
        activation = str(p.loc[p["test_acc"].idxmax(), "activation"])
    p = p[p["activation"] == activation]
    if p.empty:
        raise ConfigError(f"no training models with activation '{activation}' in the zoo; pick one of "
                          f"{sorted(props['activation'].unique())}")
    best = p.loc[p.groupby("model_id")["test_acc"].idxmax()]
    return best.sort_values("test_acc", ascending=False).head(top_k), activation


def kde_sample(z: np.ndarray, n: int, seed: int = 0, bandwidth_scale: float = 1.0) -> np.ndarray:
    """Draw ``n`` latents from a Gaussian KDE (Scott's bandwidth x ``bandwidth_scale``) of standardised
    ``z`` (m, d)."""
    from sklearn.neighbors import KernelDensity

    if len(z) < 2:
        raise DataError(
            f"a density needs at least 2 anchor models, got {len(z)}; raise top_k or build a larger zoo"
        )
    mu, sd = z.mean(0), z.std(0) + 1e-8
    scott = len(z) ** (-1.0 / (z.shape[1] + 4))  # scikit-learn's "scott" for standardised data
    kde = KernelDensity(kernel="gaussian", bandwidth=scott * bandwidth_scale).fit((z - mu) / sd)
    return kde.sample(n, random_state=seed) * sd + mu


def zoo_curve(props: pd.DataFrame, activation: str, epochs: list[int]) -> dict[int, np.ndarray]:
    """Test accuracy of the zoo's own models of ``activation`` at each available epoch."""
    p = props[props["activation"] == activation]
    return {e: p.loc[p["epoch"] == e, "test_acc"].to_numpy() for e in epochs if (p["epoch"] == e).any()}


def _rows(curves: dict[str, dict[int, Any]], epochs: list[int]) -> pd.DataFrame:
    rows = []
    for method, cur in curves.items():
        row: dict[str, Any] = {"method": method}
        for e in epochs:
            v = np.asarray(cur[e], dtype=np.float64) if e in cur else np.array([])
            row[f"epoch {e}"] = float(v.mean()) if v.size else float("nan")
            row[f"epoch {e} std"] = float(v.std()) if v.size else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def _plot(tables: dict[str, pd.DataFrame], epochs: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables), figsize=(5 * len(tables), 3.6), squeeze=False)
    for ax, (title, df) in zip(axes[0], tables.items(), strict=True):
        for _, r in df.iterrows():
            m = [r[f"epoch {e}"] for e in epochs]
            s = [r[f"epoch {e} std"] for e in epochs]
            ax.errorbar(epochs, m, yerr=s, marker="o", capsize=3, label=r["method"])
        ax.set_xlabel("fine-tuning epochs")
        ax.set_ylabel("test accuracy")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def matched_average(rep: Representation, anchors: torch.Tensor) -> torch.Tensor:
    """(1, D): the anchors (A, D) weight-matched to a reference fitted on them, then averaged.

    A baseline that needs no hyper-representation: how far plain averaging in a common unit order goes.
    :func:`fit_reference` already returns the mean of the matched models; its fourth round matches the
    anchors to the three-round reference.
    """
    return fit_reference(Permuter(rep.tokenizer), anchors.float(), rounds=4)[None]


def sample_models(rep: Representation, props: pd.DataFrame, weights_of: Any, cfg: SampleConfig
                  ) -> tuple[torch.Tensor, Recipe, pd.DataFrame, torch.Tensor, torch.Tensor]:
    """Decoded weights (n, D), the anchors' recipe, the anchor rows, the anchors' weights (A, D) and their
    embeddings (A, latent)."""
    anchors, act = select_anchors(props, rep.splits(), cfg.top_k, cfg.activation)
    W = torch.stack([weights_of(int(i)) for i in anchors.index])
    z = rep.codes(W)
    zs = torch.as_tensor(kde_sample(z.numpy(), cfg.n, cfg.seed, cfg.bandwidth_scale), dtype=torch.float32)
    recipe = Recipe(
        act,
        str(_mode(anchors["init"])),
        str(_mode(anchors["optimizer"])),
        float(_mode(anchors["lr"])),
        float(_mode(anchors["weight_decay"])),
    )
    return rep.decode_codes(zs), recipe, anchors, W, z


def run_sample(cfg: SampleConfig, data: ZooData | None = None, transfer_data: ZooData | None = None
               ) -> dict[str, Any]:
    """The whole ``hyper sample`` run (see module docstring); returns tables and paths."""
    from safetensors.torch import save_file

    from eoreps.zoo.modelzoo import ModelZoo

    if cfg.n < 1:
        raise ConfigError(f"n={cfg.n} must be >= 1")
    rep = load_representation(cfg.rep)
    rep.check_decodable()
    zoo = ModelZoo(cfg.zoo)
    rep.check_compatible(zoo.param_order, str(cfg.zoo))
    props = zoo.properties
    epochs = sorted(set(int(e) for e in cfg.epochs) | {0})
    sampled, recipe, anchors, anchor_w, anchor_z = sample_models(rep, props, zoo.weights, cfg)
    recipe.batch_size = int(zoo.manifest.get("options", {}).get("batch_size", 10))
    if data is None:
        data = zoo.dataset()
    arch = zoo.arch
    anchors_decoded = rep.decode_codes(anchor_z)
    jobs: dict[str, Callable[[], dict[int, Any]]] = {
        "sampled (KDE on hyper-representation)": lambda: finetune_curve(arch, sampled, recipe, data, epochs,
                                                                        seed=cfg.seed),
        f"random init ({recipe.init})": lambda: finetune_curve(arch, None, recipe, data, epochs, n=cfg.n,
                                                               seed=10_000 + cfg.seed),
        f"zoo models ({recipe.activation})": lambda: zoo_curve(props, recipe.activation, epochs),
        # weight matching needs the per-neuron layout (layer-list CNNs; a windowed representation of
        # another architecture has none)
        **({"average of the anchors, weight-matched (no representation)": lambda: finetune_curve(
            arch, matched_average(rep, anchor_w), recipe, data, epochs, seed=cfg.seed)}
           if rep.tokenizer is not None else {}),
        "anchors reconstructed, decode(embed(anchor)) (diagnostic)":
            lambda: finetune_curve(arch, anchors_decoded, recipe, data, epochs, seed=cfg.seed),
    }
    curves = {name: job() for name, job in progress(list(jobs.items()), desc="hyper sample: fine-tuning",
                                                    unit="curve")}
    matched = (
        match(Permuter(rep.tokenizer), rep.reference, anchor_w) if rep.reference is not None else anchor_w
    )
    images = data.x_test[:2000]
    div = {name: diversity(arch, w, recipe.activation, images) for name, w in
           (("anchors", matched), ("anchors reconstructed", anchors_decoded), ("sampled", sampled))}
    tables = {f"{data.name}": _rows(curves, epochs)}
    if cfg.transfer or transfer_data is not None:
        tdata = (
            transfer_data
            if transfer_data is not None
            else load_transfer_data(str(cfg.transfer), arch.in_shape)
        )
        rnd = random_weights(arch, recipe, cfg.n, seed=20_000 + cfg.seed)
        tcurves = {
            "sampled (KDE on hyper-representation)": finetune_curve(
                arch, sampled, recipe, tdata, epochs, seed=cfg.seed
            ),
            f"random init ({recipe.init})": finetune_curve(arch, rnd, recipe, tdata, epochs, seed=cfg.seed),
        }
        tables[f"transfer to {tdata.name}"] = _rows(tcurves, epochs)
    out = Path(cfg.out) if cfg.out is not None else Path(cfg.rep) / "sample"
    out.mkdir(parents=True, exist_ok=True)
    smoke_detail = f"{cfg.n} sampled models, {len(anchors)} anchors, epochs {','.join(map(str, epochs))}"
    md: list[str] = [smoke_markdown(smoke_detail)] if cfg.smoke else []
    frames = []
    for title, df in tables.items():
        md.append(
            f"### {title}\n\nMean test accuracy (std in the CSV) of {cfg.n} sampled and {cfg.n} random "
            f"models, the zoo's models, one weight-matched average and the {len(anchors)} anchors "
            f"reconstructed; anchors: top {len(anchors)} training models with activation {recipe.activation} "
            f"(recipe: {recipe.optimizer}, lr {recipe.lr:g}, wd {recipe.weight_decay:g}, init {recipe.init})"
            + (f"; KDE bandwidth {cfg.bandwidth_scale:g} x Scott's" if cfg.bandwidth_scale != 1 else "")
            + ".\n\n"
            + to_markdown(df[["method", *[f"epoch {e}" for e in epochs]]])
        )
        frames.append(df.assign(setting=title))
    div_df = pd.DataFrame([{"models": k, "prediction disagreement": v["prediction_disagreement"],
                            "weight distance": v["weight_distance"]} for k, v in div.items()])
    md.append(
        "### Diversity\n\nMean over pairs of models: the fraction of test images on which two models predict "
        "different classes, and the L2 distance of their weights (anchors in the representation's matched "
        "unit order" + ("" if rep.reference is not None else ", here their own order: no --align") + "). "
        "Samples far less diverse than the anchors are copies of one model, not a population.\n\n"
        + to_markdown(div_df)
    )
    atomic_write_text(out / "sample.md", "\n".join(md))
    atomic_write_text(out / "sample.csv", pd.concat(frames).to_csv(index=False))
    _plot(tables, epochs, out / "sample.png")
    with atomic_path(out / "sampled.safetensors") as tmp:
        save_file({"weights": sampled.contiguous()}, str(tmp), metadata={"activation": recipe.activation})
    functional = float(rep.meta.get("config", {}).get("functional", 0.0) or 0.0)
    note = None
    if rep.reference is None:
        note = (
            f"{cfg.rep} was fitted without --align: its decoder averages over unit orders, so decoded "
            "models are "
            "usually near chance; refit with 'eoreps hyper fit --align --functional 0.1' to sample "
            "(docs/hyper.md)"
        )
    elif functional == 0:
        note = (
            f"{cfg.rep} was fitted without --functional: decoded models keep little of the encoded models' "
            f"accuracy (MNIST CNN-s: 0.25 of 0.95); refit with 'eoreps hyper fit --align --functional 0.1' "
            f"(docs/hyper.md)"
        )
    summary = {
        "n": cfg.n,
        "anchors": len(anchors),
        "aligned_representation": rep.reference is not None,
        "functional": functional,
        "anchor_epochs": anchors["epoch"].astype(int).tolist(),
        "bandwidth_scale": cfg.bandwidth_scale,
        "note": note,
        "anchor_mean_test_acc": float(anchors["test_acc"].mean()),
        "zoo_final_mean_test_acc": float(
            props.loc[props["epoch"] == props["epoch"].max(), "test_acc"].mean()
        ),
        "recipe": recipe.__dict__,
        "diversity": div,
        "tables": {k: v.to_dict(orient="records") for k, v in tables.items()},
        **smoke_fields(cfg.smoke, smoke_detail),
    }
    write_json(out / "summary.json", summary)
    return {"tables": tables, "out": out, "summary": summary, "markdown": "\n".join(md), "note": note}
