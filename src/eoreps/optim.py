"""AdamW with PyTorch's fused kernel wherever it applies: the optimizer of every eoreps training loop.

``torch.optim.AdamW`` defaults to its per-tensor loop on CPU (the multi-tensor ``foreach`` path is picked
only for CUDA tensors). PyTorch's fused kernel (CPU since torch 2.4) does the same update in one vectorised
pass per parameter: on ResNet-18's 11.2 M parameters one step took 7.1 ms instead of 32.8 ms (2-core AMD
EPYC, 2 threads, medians of 15, ``benchmarks/adamw_step.py``, 2026-12-07), ~2 % of a SimCLR step at batch 128
and a larger share for small models. The update rule is the same; results differ from the loop's by
floating-point rounding (tested). The fused kernel needs every parameter to be a floating-point tensor on a
device it supports, and Lightning does not clip the gradients of a fused optimizer under a mixed precision;
otherwise this falls back to the default implementation.
"""

from __future__ import annotations

from typing import Any

import torch


def _fused_devices() -> tuple[str, ...]:
    """Device types with a fused AdamW kernel in this PyTorch (private helper, with a fallback)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        return tuple(_get_fused_kernels_supported_devices())
    except ImportError:  # pragma: no cover - older or newer PyTorch without the helper
        return ("cpu", "cuda")


def fused_applies(params: list[torch.Tensor]) -> bool:
    """True when every tensor in ``params`` is floating point on a device with a fused AdamW kernel."""
    devices = _fused_devices()
    return bool(params) and all(p.is_floating_point() and p.device.type in devices for p in params)


def grad_scaler(trainer: Any) -> Any:
    """The gradient scaler of a Lightning ``trainer``'s precision plugin (``16-mixed``), else None."""
    return getattr(getattr(trainer, "precision_plugin", None), "scaler", None)


def clips_under_mixed_precision(trainer: Any) -> bool:
    """True when a Lightning ``trainer`` clips gradients under a mixed precision (``bf16-mixed``,
    ``16-mixed``) or with a gradient scaler: its precision plugin then refuses optimizers that unscale
    gradients in their own step, which fused ones declare (``_step_supports_amp_scaling``), even in bf16
    where nothing is scaled."""
    if trainer is None or not (trainer.gradient_clip_val or 0) > 0:
        return False
    from lightning.pytorch.plugins.precision import MixedPrecision

    return isinstance(trainer.precision_plugin, MixedPrecision) or grad_scaler(trainer) is not None


def adamw(params: Any, *, trainer: Any = None, **kwargs: Any) -> torch.optim.AdamW:
    """``torch.optim.AdamW(params, **kwargs)`` with ``fused=True`` where :func:`fused_applies`.

    Args:
        params: parameters, ``(name, parameter)`` pairs or parameter-group dicts (``{"params": [...]}``),
            as for ``torch.optim``.
        trainer: the Lightning trainer that steps the optimizer, if any: when it clips gradients under a
            mixed precision (:func:`clips_under_mixed_precision`) the default implementation is used.
        kwargs: AdamW's options (``lr``, ``weight_decay``, ...); an explicit ``fused``, ``foreach`` or
            ``differentiable`` is passed through unchanged.

    A state dict loaded later (a resumed run) keeps the implementation chosen here: ``load_state_dict``
    would otherwise take the saved groups' ``fused`` / ``foreach`` flags, and a checkpoint of the other
    implementation would switch the optimizer (or, with a gradient scaler, break its step).
    """
    own = {"fused", "foreach", "differentiable"}  # implementation choices left to the caller when given
    if isinstance(params, torch.Tensor | set) or set(kwargs) & own:
        return torch.optim.AdamW(params, **kwargs)  # torch's own checks and choices
    groups = [dict(g, params=_as_list(g["params"])) if isinstance(g, dict) else g for g in params]
    if any(isinstance(g, dict) and set(g) & own for g in groups):
        return torch.optim.AdamW(groups, **kwargs)
    tensors = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
    tensors = [p[1] if isinstance(p, tuple) else p for p in tensors]  # named parameters
    fused = fused_applies(tensors) and not clips_under_mixed_precision(trainer)
    opt = torch.optim.AdamW(groups, fused=fused or None, **kwargs)
    opt.register_load_state_dict_post_hook(_keep_implementation)
    return opt


def _keep_implementation(opt: torch.optim.Optimizer) -> None:
    """After ``load_state_dict``: the groups' ``fused`` / ``foreach`` back to the optimizer's own, and the
    step counters where its implementation wants them: float32 on the parameter's device for the fused
    kernel, on the CPU for the loop (unless ``capturable``), as ``_init_group`` would have made them."""
    fused = opt.defaults["fused"]
    for group in opt.param_groups:
        group["fused"], group["foreach"] = fused, opt.defaults["foreach"]
    for p, state in opt.state.items():
        if isinstance(p, torch.Tensor) and isinstance(state.get("step"), torch.Tensor):
            device = p.device if fused or opt.defaults["capturable"] else torch.device("cpu")
            state["step"] = state["step"].to(device=device, dtype=torch.float32)


def _as_list(params: Any) -> list[Any]:
    """A group's ``params`` (a tensor, list or generator) as a list, read once."""
    return [params] if isinstance(params, torch.Tensor) else list(params)
