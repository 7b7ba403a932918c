"""One progress helper for every long loop and every Lightning trainer (quiet when ``EOREPS_NO_PROGRESS=1``).

On a terminal: tqdm bars. When stderr is not a terminal (a log file, a CI job, a study under ``nohup``),
carriage-return bars would pile up in the log, so plain lines are printed instead: one every 5 % of the
work but at most one per ``LINE_MIN_INTERVAL_S`` seconds (at most 21 lines per loop; a loop that ends
sooner prints nothing; a loop inside another one waits ``NESTED_MIN_INTERVAL_S``), or one a minute when
the total is unknown.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

LINE_MIN_INTERVAL_S = 2.0
NESTED_MIN_INTERVAL_S = 30.0  # a loop inside another reporting loop (a study cell's steps): long ones only
_depth = 0  # loops now printing lines (nesting level)


def progress_enabled() -> bool:
    """False when ``EOREPS_NO_PROGRESS`` is set (tests, CI logs)."""
    return os.environ.get("EOREPS_NO_PROGRESS", "") in ("", "0")


def interactive() -> bool:
    """True when stderr is a terminal (bars redraw in place); False for logs and pipes (plain lines)."""
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


class LineReporter:
    """Plain progress lines for logs: ``desc: n/total unit (p%), elapsed[, extra]``.

    A line is printed each time the count crosses another ``step_pct`` percent of ``total`` (so at most
    ``100 / step_pct`` lines plus a final one) if ``min_interval_s`` (default ``LINE_MIN_INTERVAL_S``)
    passed since the last line, or every ``interval_s`` seconds when ``total`` is unknown. The final line
    is printed only when an earlier one was or the loop took ``min_interval_s``: quick loops stay silent.
    """

    def __init__(self, desc: str, total: int | None, unit: str = "it", step_pct: float = 5.0,
                 interval_s: float = 60.0, stream: IO[str] | None = None,
                 min_interval_s: float | None = None) -> None:
        self.desc, self.total, self.unit = desc, (int(total) if total else None), unit
        self.step_pct, self.interval_s = step_pct, interval_s
        if min_interval_s is None:
            min_interval_s = NESTED_MIN_INTERVAL_S if _depth > 0 else LINE_MIN_INTERVAL_S
        self.min_interval_s = min_interval_s
        self.stream = stream
        self.t0 = self._last_t = time.monotonic()
        self._last_bucket = 0  # the first line comes after step_pct percent
        self._last_n: int | None = None

    def _bucket(self, n: int) -> int:
        assert self.total
        return int(100.0 * min(n, self.total) / self.total // self.step_pct)

    def due(self, n: int) -> bool:
        """Whether :meth:`update` with count ``n`` would print (to compute costly ``extra``
        text only then)."""
        now = time.monotonic()
        if self.total:
            return self._bucket(n) > self._last_bucket and now - self._last_t >= self.min_interval_s
        return now - self._last_t >= self.interval_s

    def update(self, n: int, extra: str = "") -> None:
        """Report the absolute count ``n``; prints only when a new step (or interval) is reached."""
        if not self.due(n):
            return
        if self.total:
            self._last_bucket = self._bucket(n)
        self._emit(n, time.monotonic(), extra)

    def close(self, n: int, extra: str = "") -> None:
        """Print the final count unless the last line already showed it."""
        now = time.monotonic()
        if n != self._last_n and n > 0 and (self._last_n is not None or now - self.t0 >= self.min_interval_s):
            self._emit(n, now, extra)

    def _emit(self, n: int, now: float, extra: str) -> None:
        self._last_t, self._last_n = now, n
        of = f"/{self.total}" if self.total else ""
        pct = f" ({100.0 * n / self.total:.0f}%)" if self.total else ""
        tail = f", {extra}" if extra else ""
        stream = self.stream or sys.stderr
        stream.write(f"{self.desc}: {n}{of} {self.unit}{pct}, {now - self.t0:.1f} s{tail}\n")
        stream.flush()


def _lines(iterable: Iterable[T], desc: str, total: int | None, unit: str) -> Iterator[T]:
    global _depth
    reporter = LineReporter(desc, total, unit)
    n = 0
    _depth += 1
    try:
        for item in iterable:
            yield item
            n += 1
            reporter.update(n)
    finally:
        _depth -= 1
    reporter.close(n)


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Wrap ``iterable`` in a progress bar on stderr labelled ``desc`` (plain lines when not a terminal)."""
    if not progress_enabled():
        return iter(iterable)
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if not interactive():
        return _lines(iterable, desc, total, unit)
    return iter(tqdm(iterable, desc=desc, total=total, unit=unit, dynamic_ncols=True, leave=False))
