"""One vocabulary for the names every pillar shares: precision and task kinds.

Precision is ``auto | fp32 | bf16 | fp16`` for users everywhere; Lightning's spellings (``32-true``,
``bf16-mixed``, ``16-mixed``, ``64-true``) are accepted as aliases. :func:`normalize_precision` is the one
function that maps a spelling to the short form, :func:`lightning_precision` the one that maps it to the
value a Lightning ``Trainer`` takes, used only where a Trainer is built (:func:`eoreps.training.build_run`);
configs, results and cards store the short form (:func:`run_precision`). What ``auto`` means stays with each
workflow (the zoo: engine- and CPU-dependent; Lightning trainers: bf16 where the device computes it
natively, else fp32, :func:`eoreps.precision.resolve_auto`).

Task kinds are ``classify | multilabel | segment | regress`` (and ``multitask`` for ``fit``); the dataset
spellings ``single`` / ``multi`` are accepted as aliases (:func:`normalize_task`).
"""

from __future__ import annotations

from collections.abc import Collection

from eoreps.errors import ConfigError, unknown_name

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_PRECISION_ALIASES = {
    "32-true": "fp32",
    "32": "fp32",
    "float32": "fp32",
    "bf16-mixed": "bf16",
    "bfloat16": "bf16",
    "16-mixed": "fp16",
    "16": "fp16",
    "float16": "fp16",
    "64-true": "fp64",
    "64": "fp64",
}
_LIGHTNING = {
    "fp32": "32-true",
    "bf16": "bf16-mixed",
    "fp16": "16-mixed",
    "fp64": "64-true",
}

PRECISION_HELP = ("auto | fp32 | bf16 | fp16 (Lightning's 32-true, bf16-mixed, 16-mixed also accepted; "
                  "auto = bf16 on CUDA with bf16, and on CPUs with AMX or AVX512-BF16 where a timed step "
                  "of this model is >= 1.05x faster in bf16; else fp32).")

TASKS = ("classify", "multilabel", "segment", "regress")
_TASK_ALIASES = {
    "single": "classify",
    "multi": "multilabel",
    "regression": "regress",
    "segmentation": "segment",
}


def _canonical(value: str, aliases: dict[str, str], allowed: Collection[str], what: str) -> str:
    """``value`` stripped and lower-cased, an alias mapped to its name; not in ``allowed``: one-line error."""
    name = str(value).strip().lower()
    name = aliases.get(name, name)
    if name not in allowed:
        raise unknown_name(what, str(value), list(allowed))
    return name


def normalize_precision(value: str, allowed: Collection[str] = PRECISIONS, what: str = "precision") -> str:
    """The short form (``fp32``, ``bf16`` ...) of any precision spelling; a name outside ``allowed`` (short
    forms) is a one-line :class:`ConfigError` listing them, e.g.
    ``normalize_precision("bf16-mixed") == "bf16"``."""
    return _canonical(value, _PRECISION_ALIASES, allowed, what)


def lightning_precision(value: str, accelerator: str = "cpu") -> str:
    """The Lightning ``Trainer(precision=...)`` value of any spelling (``auto``: what
    :func:`eoreps.precision.resolve_auto` picks for ``accelerator``)."""
    name = str(value).strip().lower()
    short = _PRECISION_ALIASES.get(name, name)
    if short == "auto":
        from eoreps.precision import resolve_auto

        short = resolve_auto(accelerator).precision
    if short not in _LIGHTNING:
        raise ConfigError(f"precision '{value}': must be one of {', '.join(PRECISIONS)}")
    return _LIGHTNING[short]


def run_precision(value: str, allowed: Collection[str] = (*PRECISIONS, "fp64"),
                  accelerator: str = "cpu") -> str:
    """The short form a Lightning run stores (configs, results.json, cards): any spelling, with ``auto``
    resolved for ``accelerator`` (``bf16`` where the device computes it natively, else ``fp32``:
    :func:`eoreps.precision.resolve_auto`); :func:`lightning_precision` of it builds the Trainer.
    ``run_precision("32-true") == "fp32"``, so what older runs recorded reads the same."""
    short = normalize_precision(value, allowed)
    if short == "auto":
        from eoreps.precision import resolve_auto

        return resolve_auto(accelerator).precision
    return short


def normalize_task(value: str, allowed: Collection[str] = TASKS) -> str:
    """``classify`` for ``single``, ``multilabel`` for ``multi`` ...; unknown names are a one-line error."""
    return _canonical(value, _TASK_ALIASES, allowed, "task")
