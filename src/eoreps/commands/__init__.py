"""Sub-commands of the ``eoreps`` CLI: one Typer app per file, registered in :mod:`eoreps.cli`."""
