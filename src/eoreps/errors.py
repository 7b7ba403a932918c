"""User-facing errors.

Library code raises :class:`EoRepsError` (or a subclass) for anything a user can fix: a missing
file, a corrupt raster, an unknown name, a wrong shape. The CLI turns it into one line on stderr and
exit code 2; nothing else in eoreps should print a traceback for bad input.

The message must name the file or value at fault and say how to fix it, e.g.::

    raise DataError(f"{path}: truncated GeoTIFF (expected 14400 pixels, read 3000); re-download the patch")
"""

from __future__ import annotations


class EoRepsError(Exception):
    """Base class for errors caused by user input; shown as one line, exit code 2."""

    exit_code: int = 2


class DataError(EoRepsError):
    """A data file or folder is missing, corrupt, of an unknown format or of the wrong shape."""


class ConfigError(EoRepsError):
    """A configuration value or name is unknown or invalid."""


def unknown_name(kind: str, name: str, choices: list[str] | tuple[str, ...], note: str = "") -> ConfigError:
    """Build the standard error for an unknown registry name, listing the valid ones (``note``: an extra
    hint appended to the one line, e.g. that the name belongs to another registry)."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    tail = f"; {note}" if note else ""
    return ConfigError(f"unknown {kind} '{name}'{hint}; choose one of: {', '.join(sorted(choices))}{tail}")
