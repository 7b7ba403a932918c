"""``eoreps hyper fit``: train a hyper-representation on the training models of a zoo.

The zoo is split by model (:mod:`eoreps.hyper.splits`); the autoencoder trains on every checkpoint of
the training models and reports its loss on the validation models. Lightning runs the loop with
bf16 autocast on CPU (``precision='bf16'``, ~7x faster than fp32 for these transformers on AMX
CPUs), writes ``checkpoints/last.ckpt`` every epoch (atomically, by Lightning) and resumes from it
when the same command is run again.

``functional > 0`` adds the functional reconstruction loss (:mod:`eoreps.hyper.functional`): the decoded
models are run on the zoo's training images (reloaded from the data set the zoo manifest names) and pulled
towards the class distributions of the originals. It roughly doubles the time per step and is the
setting for sampling (``--align --functional 0.1``, docs/hyper.md).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import save_file

from eoreps.config import to_dict
from eoreps.errors import ConfigError
from eoreps.hyper.align import fit_reference, match
from eoreps.hyper.augment import AugmentConfig, Permuter
from eoreps.hyper.autoencoder import ModelConfig
from eoreps.hyper.module import HyperModule, module_kwargs
from eoreps.hyper.splits import split_column, split_models
from eoreps.hyper.tokens import Tokenizer, TokenScaler
from eoreps.io import atomic_path, read_json, write_json
from eoreps.precision import announce, precision_record, requested, resolve_config
from eoreps.precision_probe import Workload, settle_run


@dataclass
class FitConfig:
    """Everything that defines a representation fit."""

    zoo: Path
    out: Path
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-4
    gamma: float = 0.1
    temperature: float = 0.1
    precision: str = "bf16"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    zoo_epochs: list[int] | None = None
    zoo_query: str | None = None
    max_steps: int = -1
    seed: int = 0
    functional: float = 0.0
    functional_images: int = 64
    tokenizer: str = "neuron"
    window: int = 32
    token_width: int = 64
    window_data: str = "auto"  # memory | stream | auto (eoreps.hyper.window_stream); not in the fit plan
    window_readout: str = "layer"  # eoreps.hyper.window_representation.READOUTS (hyper.json)
    window_latent: str = "window"  # window | tokens: the bottleneck (eoreps.hyper.window_autoencoder.LATENTS)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self) -> FitConfig:
        if self.precision == "auto":  # bf16 where the CPU computes it natively (eoreps.precision)
            self.precision = resolve_config(self)
        if self.precision not in ("bf16", "fp32"):
            raise ConfigError(f"precision={self.precision!r} must be auto, bf16 or fp32")
        if self.epochs < 1:
            raise ConfigError(f"epochs={self.epochs} must be >= 1")
        if self.batch_size < 2:
            raise ConfigError(f"batch_size={self.batch_size} must be >= 2 (NT-Xent needs negatives)")
        if not 0.0 <= self.gamma <= 1.0:
            raise ConfigError(f"gamma={self.gamma} must lie in [0, 1]")
        if not math.isfinite(self.functional) or self.functional < 0:
            raise ConfigError(f"functional={self.functional} must be >= 0 (0 = token MSE only)")
        if self.functional_images < 1:
            raise ConfigError(f"functional_images={self.functional_images} must be >= 1")
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"tokenizer={self.tokenizer!r} must be one of {', '.join(TOKENIZERS)}")
        if self.tokenizer == "window":
            from eoreps.hyper.window_fit import check_window_config

            check_window_config(self)
        from eoreps.hyper.window_autoencoder import LATENTS
        from eoreps.hyper.window_representation import READOUTS
        from eoreps.hyper.window_stream import check_window_data

        check_window_data(self)
        if self.window_readout not in READOUTS:
            raise ConfigError(f"window_readout={self.window_readout!r} must be one of {', '.join(READOUTS)}")
        if self.window_readout != "layer" and self.tokenizer != "window":
            raise ConfigError(f"window_readout={self.window_readout!r} needs tokenizer='window' (the "
                              f"per-neuron representation reads every block's compression token)")
        if self.window_latent not in LATENTS:
            raise ConfigError(f"window_latent={self.window_latent!r} must be one of {', '.join(LATENTS)}")
        if self.window_latent != "window" and self.tokenizer != "window":
            raise ConfigError(f"window_latent={self.window_latent!r} needs tokenizer='window' (the "
                              f"per-neuron model's bottleneck is its compression token)")
        self.zoo_query = (self.zoo_query or "").strip() or None  # '' = no query, stored as None in the plan
        return self


# one token per neuron (hyper/tokens.py) or fixed-width tokens in windows (hyper/window_tokens.py)
TOKENIZERS = ("neuron", "window")

# options whose change makes an existing checkpoint meaningless (``epochs`` may grow: training continues)
_PLAN_KEYS = ("zoo", "batch_size", "lr", "weight_decay", "gamma", "temperature", "precision", "val_fraction",
              "test_fraction", "zoo_epochs", "zoo_query", "seed", "model", "augment", "functional",
              "functional_images", "tokenizer", "window", "token_width", "window_latent")


def _upgrade_plan(old: dict[str, Any]) -> dict[str, Any]:
    """A fit plan written by an older eoreps, with the options added since set to what it did then."""
    old = dict(old)
    old.setdefault("zoo_query", None)
    old.setdefault("functional", 0.0)
    old.setdefault("functional_images", 64)
    old.setdefault("tokenizer", "neuron")
    old.setdefault("window", 32)
    old.setdefault("window_latent", "window")
    old.setdefault("token_width", 64)
    if isinstance(old.get("augment"), dict):  # target, canonical_input, align: later additions, off before
        old["augment"] = {**dataclasses.asdict(AugmentConfig()), **old["augment"]}
    if isinstance(old.get("model"), dict):  # fits before token statistics ran without them
        old["model"] = {"token_stats": False, **old["model"]}
    return old


def load_split_weights(zoo_dir: Path, assignment: dict[int, str] | None, cfg_seed: int, val_fraction: float,
                       test_fraction: float, zoo_epochs: list[int] | None = None, weights: bool = True
                       ) -> tuple[Any, torch.Tensor | None, pd.DataFrame]:
    """``(zoo, W (N, D), properties with a 'split' column)`` for every checkpoint of a zoo (``W`` None
    unless ``weights``)."""
    from eoreps.zoo.modelzoo import ModelZoo

    zoo = ModelZoo(zoo_dir, epochs=zoo_epochs)
    if zoo_epochs is not None and len(zoo.index) == 0:
        have = sorted(ModelZoo(zoo_dir).index["epoch"].unique().tolist())
        raise ConfigError(f"{zoo_dir}: no checkpoint at zoo_epochs={','.join(map(str, zoo_epochs))}; "
                          f"its epochs are {have[0]}..{have[-1]}")
    props = zoo.properties.copy()
    if assignment is None:
        assignment = split_models(props["model_id"].to_numpy(), val_fraction, test_fraction, cfg_seed)
    props["split"] = split_column(props, assignment).to_numpy()
    return zoo, zoo.weights_matrix() if weights else None, props


def query_mask(props: pd.DataFrame, query: str, zoo_dir: Path) -> pd.Series:
    """Boolean mask of the checkpoints matching ``query`` (a pandas query on the zoo index, e.g.
    ``"activation == 'relu' and test_acc >= 0.5"``); a bad query, or one matching nothing, is a one-line
    ConfigError."""
    try:
        mask = props.eval(query, local_dict={})  # no '@name' access to this function's variables
    except Exception as e:  # pandas raises many types (SyntaxError, UndefinedVariableError, TypeError, ...)
        raise ConfigError(f"zoo_query={query!r} is not a valid query on the index of {zoo_dir} "
                          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); columns: "
                          f"{', '.join(map(str, props.columns))}") from None
    if not (isinstance(mask, pd.Series) and pd.api.types.is_bool_dtype(mask)):
        raise ConfigError(f"zoo_query={query!r} must be a condition (true/false per checkpoint), e.g. "
                          f"\"test_acc >= 0.5\"")
    mask = mask.fillna(False).astype(bool)  # nullable booleans: a missing value does not match
    if not mask.any():
        raise ConfigError(f"zoo_query={query!r} matches no checkpoint of {zoo_dir}")
    return mask


def fit(cfg: FitConfig) -> dict[str, Any]:
    """Train (or resume) a representation; writes the representation directory ``cfg.out``."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader, TensorDataset

    from eoreps.training import build_run, resume_point

    cfg.validate()
    t0 = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = {k: v for k, v in to_dict(cfg).items() if k in _PLAN_KEYS}
    plan["zoo"] = str(Path(cfg.zoo).resolve())
    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    resuming = (out / "fit_plan.json").is_file() and last.is_file()
    previous = None  # the precision the resumed fit trained in (kept under auto: settle_run below)
    if resuming:
        old = _upgrade_plan(read_json(out / "fit_plan.json"))
        previous = old.get("precision")
        diff = [k for k in _PLAN_KEYS if old.get(k) != plan.get(k)
                and not (k == "precision" and requested(cfg) == "auto")]
        if diff:
            raise ConfigError(
                f"{out}: holds a representation fitted with other options (differs in "
                f"{', '.join(diff)}); use a new output folder or repeat the original options to resume"
            )
    if previous is not None and requested(cfg) == "auto":
        plan["precision"] = previous  # kept by settle_run below: the plan never holds another precision
    write_json(out / "fit_plan.json", plan)
    # hyper.json's "seconds" accumulates over the calls that finished (a resumed fit adds to it)
    earlier = (
        float(read_json(out / "hyper.json").get("seconds", 0.0))
        if last.is_file() and (out / "hyper.json").is_file()
        else 0.0
    )

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    zoo, _, props = load_split_weights(Path(cfg.zoo), None, cfg.seed, cfg.val_fraction, cfg.test_fraction,
                                       cfg.zoo_epochs, weights=False)
    all_props = props  # splits.csv covers every model, so evaluate/sample can use the whole zoo
    keep = None
    if cfg.zoo_query:
        keep = query_mask(props, cfg.zoo_query, Path(cfg.zoo)).to_numpy(copy=True)
        props = props[keep].reset_index(drop=True)
    from eoreps.hyper.window_stream import stream_loaders, streams

    # windows read from the shards: no (N, D) matrix; the memory path loads every checkpoint of the selected
    # epochs before the query applies, so auto weighs all of them
    stream = streams(cfg, zoo.num_params, len(all_props))
    W = None if stream else zoo.weights_matrix()
    if W is not None and keep is not None:
        W = W[torch.from_numpy(keep)]
    if int((props["split"] == "train").sum()) < 2:
        raise ConfigError(
            f"{cfg.zoo}: fewer than 2 training checkpoints left to fit on (zoo_query/zoo_epochs "
            f"select too few training models; NT-Xent needs a batch of 2); widen the selection"
        )
    train_mask = torch.tensor((props["split"] == "train").to_numpy())
    val_mask = torch.tensor((props["split"] == "val").to_numpy())
    reference = None
    if cfg.tokenizer == "window":
        from eoreps.hyper.window_fit import check_window_zoo

        check_window_zoo(cfg, zoo, props)
    tok = Tokenizer(zoo.param_order) if cfg.tokenizer == "neuron" else None
    if cfg.augment.align:
        from eoreps.hyper.window_fit import align_tokenizer

        permuter = Permuter(tok or align_tokenizer(cfg, zoo))
        reference = zoo_reference(permuter, W, props)
        W = match(permuter, reference, W)
    W_train, W_val = (W[train_mask], W[val_mask]) if W is not None else (None, None)
    # activation of each checkpoint (an index into the zoo's sorted activations): the functional loss runs
    # every model with its own activation
    if "activation" not in all_props.columns:  # backbone zoos: the activation is part of the backbone
        all_props, props = all_props.assign(activation="builtin"), props.assign(activation="builtin")
    activations = sorted(str(a) for a in all_props["activation"].unique())
    act = torch.tensor(
        props["activation"].astype(str).map({a: i for i, a in enumerate(activations)}).to_numpy()
    )
    bs = min(cfg.batch_size, int(train_mask.sum()))
    module: Any
    if W_train is None or W_val is None:
        module, train_dl, val_dl, example = stream_loaders(cfg, zoo, props, train_mask, val_mask)
    else:
        train_dl = DataLoader(
            TensorDataset(W_train, act[train_mask]), batch_size=bs, shuffle=True, drop_last=True
        )
        val_dl = DataLoader(
            TensorDataset(W_val, act[val_mask]),
            batch_size=min(cfg.batch_size, max(2, len(W_val))),
            drop_last=True,
        )
        if tok is None:
            from eoreps.hyper.window_fit import window_module

            module = window_module(cfg, zoo, W_train)
        else:
            module = _neuron_module(cfg, zoo, tok, W_train, activations)
        example = (W_train[:bs], act[train_mask][:bs])
    # auto on a bf16 CPU: time this module's own training step (views, loss) in fp32 and bf16, keyed by its
    # structure and batch shapes (not seed, lr, fractions or zoo_query); a resume keeps the stored choice
    step = (_LossStep(module), example)
    precision = settle_run(cfg, out, resuming, lambda: Workload([step], f"hyper {cfg.tokenizer} b{bs}"),
                           previous=previous)
    announce(precision)
    if plan["precision"] != cfg.precision:
        write_json(out / "fit_plan.json", {**plan, "precision": cfg.precision})
    identity = {"zoo": plan["zoo"]}
    run = build_run(
        out, identity, resume=resume_point(last, identity, f"delete {ckpt_dir} to start fresh"),
        # save_top_k=1 without a monitor keeps the latest epoch's file; with save_top_k=0 Lightning would
        # write last.ckpt only when training ends, and a killed run could not resume
        checkpoint=ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=1, every_n_epochs=1),
        max_epochs=cfg.epochs, max_steps=cfg.max_steps, accelerator="cpu", devices=1,
        precision=cfg.precision,
        log_every_n_steps=max(1, min(50, len(train_dl))), num_sanity_val_steps=0,
        limit_val_batches=1.0 if len(val_dl) else 0, deterministic=False)
    trainer = run.trainer
    run.fit(module, train_dl, val_dl if len(val_dl) else None)

    metrics = {
        k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1
    }
    export(module, cfg, zoo, all_props, out, metrics, earlier + time.perf_counter() - t0, reference,
           precision)
    return {
        "out": str(out),
        "train_checkpoints": int(train_mask.sum()),
        "val_checkpoints": int(val_mask.sum()),
        "epochs": int(trainer.current_epoch),
        "steps": int(trainer.global_step),
        "seconds": round(time.perf_counter() - t0, 1),
        **{k: round(v, 5) for k, v in metrics.items()},
    }


class _LossStep(torch.nn.Module):
    """The loss of a hyper module's training step (``module._step``: views, encoder, decoder, loss), as a
    module whose forward ``--precision auto`` times (:mod:`eoreps.precision_probe`)."""

    def __init__(self, module: Any) -> None:
        super().__init__()
        self.module = module

    def forward(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.module._step(batch)["loss"]


def _neuron_module(cfg: FitConfig, zoo: Any, tok: Tokenizer, W_train: torch.Tensor, activations: list[str]
                   ) -> HyperModule:
    """The per-neuron :class:`HyperModule` of a fit (scaler fitted on the training weights)."""
    scaler = TokenScaler.fit(tok, W_train)
    kwargs = module_kwargs(tok.to_dict()["param_order"], cfg.model, cfg.augment, cfg.gamma, cfg.temperature,
                           cfg.lr, cfg.weight_decay, cfg.functional, cfg.functional_images)
    functional_kw: dict[str, Any] = {}
    if cfg.functional > 0:
        functional_kw = {"arch": {"name": zoo.arch.name, "in_shape": list(zoo.arch.in_shape),
                                  "num_classes": zoo.arch.num_classes},
                         "activations": activations, "probe_images": zoo.dataset().x_train}
    return HyperModule(**kwargs, scaler_mean=scaler.mean, scaler_std=scaler.std, **functional_kw)


def zoo_reference(
    permuter: Permuter, W: torch.Tensor, props: pd.DataFrame, max_models: int = 256
) -> torch.Tensor:
    """(D,) reference unit order for ``--align``: :func:`fit_reference` on the final checkpoints of (at most
    ``max_models``) training models. Deterministic, so a resumed fit recomputes the same reference."""
    final = (props["split"] == "train") & (
        props["epoch"] == props.groupby("model_id")["epoch"].transform("max")
    )
    return fit_reference(permuter, W[torch.tensor(final.to_numpy())][:max_models].float())


def export(module: Any, cfg: FitConfig, zoo: Any, props: pd.DataFrame, out: Path,
           metrics: dict[str, float], seconds: float, reference: torch.Tensor | None = None,
           precision: dict[str, str] | None = None) -> None:
    """Write ``model.safetensors``, ``hyper.json`` and ``splits.csv`` (atomically); ``module`` is a
    :class:`HyperModule` or a :class:`~eoreps.hyper.window_module.WindowModule`."""
    from eoreps.hyper.window_module import WindowModule

    state = {k: (v.detach().float() if v.is_floating_point() else v.detach()).contiguous()
             for k, v in module.net.state_dict().items()}
    state["scaler.mean"] = module.scaler_mean.detach().float().contiguous()
    state["scaler.std"] = module.scaler_std.detach().float().contiguous()
    if reference is not None:
        state["align.reference"] = reference.float().contiguous()
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(state, str(tmp))
    splits = props.drop_duplicates("model_id")[["model_id", "split"]].sort_values("model_id")
    with atomic_path(out / "splits.csv") as tmp:
        splits.to_csv(tmp, index=False)
    meta = {
        "zoo_path": str(Path(cfg.zoo).resolve()),
        "architecture": zoo.manifest["architecture"],
        "in_shape": zoo.manifest["in_shape"],
        "num_classes": zoo.manifest["num_classes"],
        "zoo_dataset": zoo.manifest.get("dataset", {}),
        "param_order": [[k, list(s)] for k, s in zoo.param_order],
        "model": cfg.model.to_dict(),
        "augment": dataclasses.asdict(cfg.augment),
        "config": to_dict(cfg),
        "final_metrics": metrics,
        **({"tokenizer": "window", "window": module.window, "window_tokenizer": module.tokenizer.to_dict(),
            "window_readout": cfg.window_readout, "window_latent": cfg.window_latent}
           if isinstance(module, WindowModule) else {}),
        "seconds": round(seconds, 1),
        "precision": precision or precision_record(cfg.precision, asked=requested(cfg)),
    }
    write_json(out / "hyper.json", meta)
