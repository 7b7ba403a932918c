"""A setting a run folder keeps across resumes: what was asked, what it resolved to, reused under ``auto``.

Some choices of a run must not change when it resumes from a checkpoint, although ``auto`` could resolve
them differently on the machine that resumes it: the precision (``precision.json``,
:func:`eoreps.precision_probe.settle_run`: a measured bf16 verdict must not flip mid-run) and the number of
loader workers of a stream (``loader.json``, :func:`eoreps.data.loader_workers.settle_workers`: LitData
re-stripes the epoch when it changes). A :class:`RunSetting` describes one such setting: its file in the
run folder, how its value is stored as JSON fields, and what a resume that explicitly asks for a different
value gets (``policy``): ``"error"`` (a one-line :class:`eoreps.errors.ConfigError`, exit 2) or ``"warn"``
(the asked value is used, with a one-line warning on stdout). :meth:`RunSetting.settle` applies it:

* a fresh run resolves the value and stores it (``{<value fields>, "asked": <what was asked>}``);
* a resume under ``auto`` takes over the stored value without resolving anything (whatever this machine
  would choose now, whatever the first run asked);
* a resume with an explicit value resolves it; where it conflicts with the stored value the policy applies;
  the value used is stored. Under ``"error"``, a setting that can tell what an explicit value stands for
  without resolving it (``explicit``) compares that first and refuses a conflict before ``resolve`` runs
  (which may build and time a workload).

Files are written atomically (:func:`eoreps.io.write_json`); an absent or unreadable file counts as none
stored (the run resolves again).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from eoreps.errors import ConfigError

__all__ = ["AUTO", "Policy", "RunSetting"]

AUTO = "auto"
Policy = Literal["error", "warn"]
V = TypeVar("V")


@dataclass(frozen=True)
class RunSetting(Generic[V]):
    """One setting a run folder keeps (see the module docstring).

    Attributes:
        file: its file name in the run folder (``precision.json``).
        encode: the JSON fields that store a value (``{"loader_workers": 2}``).
        decode: the value from a stored record; raises ``KeyError``, ``ValueError`` or ``TypeError`` when
            the record does not hold one (then none is stored).
        policy: what a resume explicitly asking for a conflicting value gets: ``"error"`` or ``"warn"``.
        conflict: the one-line message for that case: ``conflict(path, stored, asked value)``.
        compatible: whether a stored and an asked value agree (default ``==``).
        explicit: the value an explicit ask stands for, when that can be told without resolving it
            (``None`` from it, or no function: it cannot); used by :meth:`settle` to refuse a conflict
            under ``"error"`` before calling ``resolve``.
    """

    file: str
    encode: Callable[[V], dict[str, Any]]
    decode: Callable[[Mapping[str, Any]], V]
    policy: Policy
    conflict: Callable[[Path, V, V], str]
    compatible: Callable[[V, V], bool] = operator.eq
    explicit: Callable[[Any], V | None] | None = None

    def path(self, out: Path) -> Path:
        """The setting's file in the run folder ``out``."""
        return Path(out) / self.file

    def stored(self, out: Path) -> V | None:
        """The value stored in ``out`` (``None`` when absent, unreadable or not a record of this setting)."""
        try:
            return self.decode(self.record(self.path(out)))
        except (KeyError, ValueError, TypeError):
            return None

    @staticmethod
    def record(path: Path) -> dict[str, Any]:
        """The JSON object at ``path`` (empty when absent, unreadable or not an object)."""
        try:
            rec = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            return {}
        return rec if isinstance(rec, dict) else {}

    def store(self, out: Path, value: V, asked: Any) -> None:
        """Write ``value`` and what was ``asked`` to the setting's file (atomically)."""
        from eoreps.io import write_json

        write_json(self.path(out), {**self.encode(value), "asked": asked})

    def replace(self, path: Path, value: V) -> None:
        """Rewrite the value stored at ``path``, keeping the record's other fields (what was asked)."""
        from eoreps.io import write_json

        write_json(path, {**self.record(path), **self.encode(value)})

    def settle(self, out: Path, asked: Any, resuming: bool, resolve: Callable[[], V],
               previous: V | None = None) -> V:
        """The value the run in ``out`` uses (see the module docstring), stored unless taken over.

        Args:
            out: the run folder.
            asked: what the run asked for: :data:`AUTO` or an explicit value (stored as such).
            resuming: the run continues from a checkpoint in ``out``.
            resolve: the value ``asked`` gives now (called only when the stored value is not reused).
            previous: the value to keep when resuming a folder with no record of this setting (a run from
                before the setting's file existed); ``None``: resolve.

        Raises:
            ConfigError: ``policy="error"`` and a resume asked explicitly for a conflicting value.
        """
        stored = self.stored(out) if resuming else None
        if stored is None and resuming:
            stored = previous
        if stored is not None and asked == AUTO:
            return stored
        if stored is not None and self.policy == "error" and self.explicit is not None:
            wanted = self.explicit(asked)  # refused without resolving (no workload built or timed)
            if wanted is not None and not self.compatible(stored, wanted):
                raise ConfigError(self.conflict(self.path(out), stored, wanted))
        value = resolve()
        if stored is not None and not self.compatible(stored, value):
            message = self.conflict(self.path(out), stored, value)
            if self.policy == "error":
                raise ConfigError(message)
            print(f"warning: {message}")  # stdout: stderr is kept for one-line errors
        self.store(out, value, asked)
        return value
