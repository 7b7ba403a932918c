"""``--quick``: shrink a run to seconds without ever replacing a value the user gave.

Each command knows which options the user set (:func:`eoreps.commands.common.explicit`) and passes them
as ``keep``; :func:`shrink` changes only the others and says what it changed, so the run can print it::

    changes = shrink(cfg, {"epochs": 1, "backbone": "cnn-tiny"}, keep={"epochs"})
    print(describe(changes))  # --quick: backbone cnn-small -> cnn-tiny
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any


def _owner(obj: Any, path: str) -> tuple[Any, str]:
    *parents, name = path.split(".")
    for p in parents:
        obj = getattr(obj, p)
    return obj, name


def shrink(obj: Any, changes: Mapping[str, Any], keep: Collection[str] = ()) -> list[str]:
    """Apply ``changes`` to ``obj`` except the attribute paths in ``keep``; describe what changed.

    Args:
        obj: a config object (attributes; dotted paths such as ``"options.train.epochs"`` reach nested ones).
        changes: path -> new value, or a callable old -> new value (e.g. ``lambda v: min(v, 2)``).
        keep: paths the user set explicitly: left alone.

    Returns:
        ``["epochs 15 -> 1", ...]`` for every value that actually changed.
    """
    done = []
    for path, new in changes.items():
        if path in keep:
            continue
        owner, name = _owner(obj, path)
        old = getattr(owner, name)
        value = new(old) if callable(new) else new
        if value != old:
            setattr(owner, name, value)
            done.append(f"{path.rsplit('.', 1)[-1].replace('_', '-')} {_show(old)} -> {_show(value)}")
    return done


def _show(v: Any) -> str:
    if isinstance(v, dict):
        return ",".join(f"{k}={x}" for k, x in v.items()) or "{}"
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return str(v)


def describe(changes: list[str]) -> str:
    """The one line a ``--quick`` run prints (``""`` when nothing changed)."""
    return f"--quick: {', '.join(changes)}" if changes else ""
