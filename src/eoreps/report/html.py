"""A self-contained HTML report: headings, paragraphs, tables and figures (relative PNG links)."""

from __future__ import annotations

import datetime as _dt
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from eoreps.io import atomic_write_text
from eoreps.report.tables import SYNTHETIC_NOTE, display_frame

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1000px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #2c6e49;padding-bottom:.2em} h2{color:#2c6e49;margin-top:1.6em}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em} th,td{border:1px solid #bbb;padding:.3em .6em;
text-align:right} th{background:#eef5f0} td:first-child,th:first-child{text-align:left}
.synthetic{background:#fff3cd;border:1px solid #e0b400;padding:.6em 1em;border-radius:4px}
img{max-width:100%;border:1px solid #ddd;margin:.5em 0} .meta{color:#666;font-size:.85em}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto}
"""


@dataclass
class Section:
    """One part of a report.

    Attributes:
        title: section heading.
        paragraphs: plain-text paragraphs (escaped).
        tables: (caption, DataFrame) pairs.
        figures: (caption, PNG path relative to the report folder) pairs.
        code: preformatted text blocks (e.g. the command that produced the section).
    """

    title: str
    paragraphs: Sequence[str] = field(default_factory=list)
    tables: Sequence[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: Sequence[tuple[str, str]] = field(default_factory=list)
    code: Sequence[str] = field(default_factory=list)


def write_report(
    out_dir: str | Path,
    title: str,
    sections: Sequence[Section],
    synthetic: bool,
    meta: dict[str, object] | None = None,
    filename: str = "report.html",
    smoke: str | None = None,
) -> Path:
    """Write ``out_dir/filename`` and return its path.

    ``synthetic=True`` puts the SimEO disclaimer at the top: every report that uses SimEO must say so.
    ``smoke`` (a ``--quick`` run; the text says how small, e.g. ``"1 seed, 2 label fractions"``) adds the
    smoke-run banner of :mod:`eoreps.smoke`.
    """
    out = Path(out_dir)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if smoke is not None:
        from eoreps.smoke import smoke_note

        parts.append(
            f"<p class='synthetic'><b>{html.escape(smoke_note(smoke))}</b> A --quick run: the numbers "
            "only show that it works.</p>"
        )
    if synthetic:
        parts.append(f"<p class='synthetic'><b>Synthetic data.</b> {html.escape(SYNTHETIC_NOTE)}</p>")
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    meta_items = {"generated": stamp, **(meta or {})}
    parts.append("<p class='meta'>" + " · ".join(
        f"{html.escape(str(k))}: {html.escape(str(v))}" for k, v in meta_items.items()) + "</p>")
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        parts.extend(f"<p>{html.escape(p)}</p>" for p in s.paragraphs)
        for caption, df in s.tables:
            parts.append(f"<p><b>{html.escape(caption)}</b></p>")
            parts.append(display_frame(df).to_html(index=False, border=0, float_format=lambda x: f"{x:.3f}",
                                                   na_rep="n/a"))
        for caption, png in s.figures:
            parts.append(f"<figure><img src='{html.escape(png)}' alt='{html.escape(caption)}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        parts.extend(f"<pre>{html.escape(c)}</pre>" for c in s.code)
    parts.append("</body></html>")
    path = out / filename
    atomic_write_text(path, "\n".join(parts))
    return path
