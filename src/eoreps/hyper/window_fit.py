"""The windowed path of ``eoreps hyper fit`` (``tokenizer="window"``): option checks, zoo checks and the
:class:`~eoreps.hyper.window_module.WindowModule` of a fit; :func:`eoreps.hyper.train.fit` runs the loop,
resuming and export as for the per-neuron representation."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch

from eoreps.errors import ConfigError, DataError
from eoreps.hyper.tokens import Tokenizer
from eoreps.hyper.window_module import WindowModule, window_module_kwargs
from eoreps.hyper.window_tokens import TensorScaler, WindowTokenizer, candidate_chains, verify_chains

# zoo index columns that name a member's architecture (zoos of several backbones)
ARCH_COLUMNS = ("architecture", "arch", "backbone")


def check_window_config(cfg: Any) -> None:
    """One-line :class:`ConfigError` for options the windowed representation does not support."""
    if cfg.window < 1 or cfg.token_width < 1:
        raise ConfigError(f"window={cfg.window} and token_width={cfg.token_width} must be >= 1")
    if cfg.augment.canonical_input or cfg.augment.target != "view":
        raise ConfigError("tokenizer='window' supports the permutation, noise, erasing and align options "
                          "only; drop canonical_input and target=canonical")
    if cfg.functional > 0:
        raise ConfigError(f"functional={cfg.functional}: the functional loss needs whole decoded models; "
                          f"use tokenizer='neuron' for it")


def align_tokenizer(cfg: Any, zoo: Any) -> Tokenizer:
    """The per-neuron tokenizer weight matching (``align``) permutes with; a one-line
    :class:`ConfigError` naming the zoo when its architecture has none (only layer-list CNNs have)."""
    try:
        return Tokenizer(zoo.param_order)
    except DataError:
        raise ConfigError(f"{cfg.zoo}: align matches the units of layer-list CNNs only "
                          f"(zoo/architectures.py); this zoo's architecture has none: fit without --align"
                          ) from None


def zoo_tokenizer(cfg: Any, zoo: Any) -> WindowTokenizer:
    """The zoo's :class:`WindowTokenizer` with the window checked; errors name the zoo."""
    try:
        tok = WindowTokenizer(zoo.param_order, cfg.token_width, chains=[])
        tok.check_window(cfg.window)
    except ConfigError as e:
        raise ConfigError(f"{cfg.zoo}: {e}") from None
    return tok


def check_window_zoo(cfg: Any, zoo: Any, props: pd.DataFrame) -> None:
    """One-line :class:`ConfigError` for a zoo one windowed representation cannot learn: several
    architectures, an untokenisable architecture, or fewer tokens than ``cfg.window``."""
    for col in ARCH_COLUMNS:
        if col in props.columns and props[col].nunique() > 1:
            names = ", ".join(sorted(map(str, props[col].unique()))[:4])
            raise ConfigError(f"{cfg.zoo}: mixes architectures ({col}: {names}); one representation learns "
                              f"one architecture: select one with zoo_query=\"{col} == '...'\"")
    zoo_tokenizer(cfg, zoo)


def permutable_chains(tok: WindowTokenizer, zoo: Any) -> list[tuple[int, int]]:
    """The candidate chains of ``tok`` verified on the zoo's first member (:func:`verify_chains`); none, with
    a warning, when the zoo cannot rebuild its network (an architecture this eoreps does not register, a
    manifest without ``in_shape``, weights whose keys or shapes the rebuilt network does not take): the
    augmentation never applies an unverified permutation. Other errors (an unreadable shard's
    :class:`DataError`) propagate."""
    try:
        net = zoo.build_model(0)
        example = torch.randn(2, *[int(v) for v in zoo.manifest["in_shape"]],
                              generator=torch.Generator().manual_seed(0))
    except (ConfigError, KeyError, TypeError, ValueError, RuntimeError) as e:  # RuntimeError: load_state_dict
        where = getattr(getattr(zoo, "store", None), "root", "zoo")
        warnings.warn(f"{where}: cannot rebuild a member to verify permutations ({type(e).__name__}: {e}); "
                      f"fitting without the permutation augmentation",
                      RuntimeWarning, stacklevel=2)
        return []
    finally:
        zoo.release_shards()  # a streamed fit keeps no shard in memory
    candidates = copy.copy(tok)  # shares the index tensors: no second tokenizer of the model's size
    candidates.chains = candidate_chains(tok)
    return verify_chains(candidates, net, example)


def window_module(cfg: Any, zoo: Any, W_train: torch.Tensor) -> WindowModule:
    """The :class:`WindowModule` of a fit: tokenizer (verified chains when ``cfg.augment.permute``), scaler
    fitted on the training weights (N, D)."""
    return window_module_with(cfg, zoo, lambda tok: TensorScaler.fit(tok, W_train))


def window_module_with(cfg: Any, zoo: Any, fit_scaler: Callable[[WindowTokenizer], TensorScaler]
                       ) -> WindowModule:
    """:func:`window_module` with the scaler from ``fit_scaler(tokenizer)`` (the streamed path fits it
    without the weight matrix: :func:`eoreps.hyper.window_stream.streaming_scaler`)."""
    tok = zoo_tokenizer(cfg, zoo)
    if cfg.augment.permute:
        tok.chains = permutable_chains(tok, zoo)
    scaler = fit_scaler(tok)
    kwargs = window_module_kwargs(tok, cfg.window, cfg.model, cfg.augment, cfg.gamma, cfg.temperature, cfg.lr,
                                  cfg.weight_decay, latent=cfg.window_latent)
    del tok  # the module builds its own tokenizer: one of the model's size alive at a time
    return WindowModule(**kwargs, scaler_mean=scaler.mean, scaler_std=scaler.std)
