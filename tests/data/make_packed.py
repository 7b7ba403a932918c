"""Tiny packed archives for the streaming-reader tests (``docs/data.md``, "Streaming a packed archive").

They are written by the real writer (:func:`eoreps.data.pack.pack`, ``eoreps data pack``), so the
tests read exactly what users stream.
"""

from __future__ import annotations

from pathlib import Path

_MODALITIES = ("s2", "s1")


def make_packed(out: str | Path, source: str | Path | None = None, n: int = 120,
                modalities: tuple[str, ...] = _MODALITIES, chunk_bytes: str = "200KB") -> Path:
    """Pack ``source`` (default: a fresh ``n``-patch SimEO folder beside ``out``) into ``out``; small chunks
    so that even a tiny pack spans several of them (what rank and worker sharding split)."""
    from eoreps.data.pack import PackOptions, pack

    out = Path(out)
    if source is None:
        from eoreps.data.simeo.io import write_simeo

        source = out.parent / f"{out.name}_simeo"
        write_simeo(source, n=n, seed=0)
    pack(
        PackOptions(source=str(source), out=out, modalities=modalities, part_size=40, chunk_bytes=chunk_bytes)
    )
    return out
