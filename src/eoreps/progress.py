"""One progress bar helper for every long loop (tqdm; quiet when ``EOREPS_NO_PROGRESS=1``)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    """False when ``EOREPS_NO_PROGRESS`` is set (tests, CI logs)."""
    return os.environ.get("EOREPS_NO_PROGRESS", "") in ("", "0")


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Wrap ``iterable`` in a progress bar on stderr labelled ``desc``."""
    return iter(tqdm(iterable, desc=desc, total=total, unit=unit, disable=not progress_enabled(),
                     dynamic_ncols=True, leave=False))
