"""Marking of smoke runs (``--quick``) in everything they print or write.

A ``--quick`` run trains for seconds on a sliver of the data: its numbers show that the pipeline works,
not how well a method does. Every table such a run prints or writes says so, in the same words:

* printed output and markdown: :func:`smoke_markdown` (a quoted line above the table);
* HTML reports: ``write_report(..., smoke=detail)`` (a banner under the title);
* JSON results: :func:`smoke_fields` (``"smoke": true`` and the note), merged into the written dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def smoke_note(detail: str = "") -> str:
    """``"(smoke run: 2 test models, not a measurement)"``; ``detail`` says how small the run was."""
    return f"(smoke run{': ' + detail if detail else ''}, not a measurement)"


def smoke_markdown(detail: str = "") -> str:
    """A markdown line (and blank line) to put above a smoke run's tables."""
    return f"> **{smoke_note(detail)}** A --quick run: the numbers below only show that it works.\n\n"


def smoke_fields(smoke: bool, detail: str = "") -> dict[str, Any]:
    """``{"smoke": smoke}`` plus ``"smoke_note"`` for a smoke run: fields for a results JSON file."""
    return {"smoke": True, "smoke_note": smoke_note(detail)} if smoke else {"smoke": False}


def mark_json(path: str | Path, detail: str = "") -> None:
    """Add the smoke-run fields to the JSON object in ``path`` (a results file written by a library call
    that does not know it was run with ``--quick``)."""
    from eoreps.io import read_json, write_json

    write_json(path, {**read_json(path), **smoke_fields(True, detail)})
