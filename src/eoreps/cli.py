"""The ``eoreps`` command line: thin wrappers that parse options and call library functions.

Each sub-command group lives in :mod:`eoreps.commands` (one file per group) and is registered here.
Errors caused by user input (:class:`eoreps.errors.EoRepsError`) are printed as one line on stderr
with exit code 2.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

import click
import typer

from eoreps.errors import EoRepsError

# Typer >= 0.20 vendors its own click; catch both its exceptions and plain click's.
_ABORTS = tuple({click.exceptions.Abort, getattr(typer, "Abort", click.exceptions.Abort)})
_USAGE_ERRORS = tuple({click.ClickException, getattr(typer, "TyperException", click.ClickException)})

app = typer.Typer(
    name="eoreps",
    help="Label-efficient representation learning for Earth observation and for neural networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _register() -> None:
    from eoreps.commands import data as data_cmd
    from eoreps.commands import demo as demo_cmd
    from eoreps.commands import evaluate as evaluate_cmd
    from eoreps.commands import experiment as exp_cmd
    from eoreps.commands import fit as fit_cmd
    from eoreps.commands import hyper as hyper_cmd
    from eoreps.commands import pretrain as pretrain_cmd
    from eoreps.commands import study as study_cmd
    from eoreps.commands import zoo as zoo_cmd

    app.add_typer(data_cmd.app, name="data")
    app.command("demo")(demo_cmd.demo)
    app.command("evaluate")(evaluate_cmd.evaluate)
    app.add_typer(study_cmd.app, name="study")
    app.command("fit")(fit_cmd.fit)
    app.add_typer(exp_cmd.app, name="experiment")
    app.command("pretrain")(pretrain_cmd.pretrain)
    app.add_typer(zoo_cmd.app, name="zoo")
    app.add_typer(hyper_cmd.app, name="hyper")


_register()


def _quiet_libraries() -> None:
    """Keep the terminal for eoreps' own progress and results: Lightning's banner lines ("GPU available",
    tips) and warnings that are expected by design (eoreps normalises batches in
    ``on_after_batch_transfer`` on purpose; a deprecation inside Lightning's own code) are hidden.
    ``EOREPS_VERBOSE=1`` shows everything."""
    if os.environ.get("EOREPS_VERBOSE"):
        return
    # Lightning resets its package loggers' level on import; its info lines go through these two children.
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings(
        "ignore", message=r".*(LeafSpec|isinstance\(treespec|overridden `on_after_batch_transfer`|"
                          r"does not have many workers).*")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``eoreps`` script."""
    _quiet_libraries()
    try:
        rv = app(args=argv, prog_name="eoreps", standalone_mode=False)
    except EoRepsError as e:
        print(f"eoreps: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except _ABORTS:
        print("eoreps: aborted", file=sys.stderr)
        sys.exit(130)
    except _USAGE_ERRORS as e:
        e.show()  # type: ignore[attr-defined]
        sys.exit(getattr(e, "exit_code", 2))
    except KeyboardInterrupt:
        print("eoreps: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
