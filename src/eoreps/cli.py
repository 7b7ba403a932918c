"""The ``eoreps`` command line: thin wrappers that parse options and call library functions.

Each sub-command group lives in :mod:`eoreps.commands` (one file per group) and is registered here.
Errors caused by user input (:class:`eoreps.errors.EoRepsError`) are printed as one line on stderr
with exit code 2.
"""

from __future__ import annotations

import errno
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
_HELP_SCREENS = tuple(
    {
        click.exceptions.NoArgsIsHelpError,
        getattr(
            getattr(getattr(typer, "_click", None), "exceptions", None),
            "NoArgsIsHelpError",
            click.exceptions.NoArgsIsHelpError,
        ),
    }
)


def _usage_line(e: Exception) -> str:
    """A usage error (unknown option, bad option value) as one line, with where to find the help."""
    fmt = getattr(e, "format_message", None)
    msg = " ".join((fmt() if fmt else str(e)).split())
    ctx = getattr(e, "ctx", None)
    return f"{msg} (see '{ctx.command_path} -h')" if ctx is not None else msg

app = typer.Typer(
    name="eoreps",
    help="Label-efficient representation learning for Earth observation and for neural networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _register() -> None:
    from eoreps.commands import backbone as backbone_cmd
    from eoreps.commands import data as data_cmd
    from eoreps.commands import demo as demo_cmd
    from eoreps.commands import embed as embed_cmd
    from eoreps.commands import evaluate as evaluate_cmd
    from eoreps.commands import experiment as exp_cmd
    from eoreps.commands import fit as fit_cmd
    from eoreps.commands import hyper as hyper_cmd
    from eoreps.commands import pretrain as pretrain_cmd
    from eoreps.commands import retrieve as retrieve_cmd
    from eoreps.commands import study as study_cmd
    from eoreps.commands import zoo as zoo_cmd

    app.add_typer(backbone_cmd.app, name="backbone")
    app.add_typer(data_cmd.app, name="data")
    app.command("demo")(demo_cmd.demo)
    app.command("embed")(embed_cmd.embed)
    app.command("evaluate")(evaluate_cmd.evaluate)
    app.add_typer(study_cmd.app, name="study")
    app.command("fit")(fit_cmd.fit)
    app.add_typer(exp_cmd.app, name="experiment")
    app.command("pretrain")(pretrain_cmd.pretrain)
    app.command("retrieve")(retrieve_cmd.retrieve)
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
    # Lightning resets its package loggers' level on import; its info lines go through these children
    # (the checkpoint connector logs "`weights_only` was not set, defaulting to `False`" on every save:
    # eoreps' checkpoints are its own and hold the optimizer and loop state on purpose).
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning.pytorch.trainer.connectors.checkpoint_connector"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Harmless by design: LeafSpec/treespec is a torch deprecation inside Lightning's own code;
    # eoreps normalises batches in on_after_batch_transfer on purpose; the data sets are in memory,
    # so loader workers would only add start-up time; a packed archive's LitData stream defines __len__ and
    # assigns each loader worker (and rank) its own chunks, so the length Lightning warns about is exact.
    warnings.filterwarnings(
        "ignore", message=r".*(LeafSpec|isinstance\(treespec|overridden `on_after_batch_transfer`|"
                          r"does not have many workers|`IterableDataset` has `__len__` defined).*")


# Errors of the user's file system (disk full, read-only, permission denied, a file where a folder is
# expected, a folder where a file is expected): one line naming the path, not a traceback.
_USER_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR,
                          errno.EDQUOT})
_ERRNO_HINTS = {errno.ENOSPC: "free some disk space or pass another --out",
                errno.EDQUOT: "free some disk space or pass another --out",
                errno.EROFS: "the file system is read-only; pass a writable --out",
                errno.EACCES: "check the permissions or pass a writable --out",
                errno.EPERM: "check the permissions or pass a writable --out",
                errno.ENOTDIR: "a part of the path is a file, not a folder",
                errno.EISDIR: "the path is a folder, not a file"}


def _os_error_line(e: OSError) -> str:
    """``PATH: reason; hint`` for an :class:`OSError` caused by the user's file system."""
    where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None) or "(unknown path)"
    reason = e.strerror or os.strerror(e.errno or 0)
    return f"{where}: {reason}; {_ERRNO_HINTS[e.errno]}".replace("\n", " ")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``eoreps`` script."""
    _quiet_libraries()
    try:
        rv = app(args=argv, prog_name="eoreps", standalone_mode=False)
    except EoRepsError as e:
        print(f"eoreps: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except OSError as e:
        if e.errno not in _USER_ERRNOS:
            raise  # anything else is a bug: keep its traceback
        print(f"eoreps: error: {_os_error_line(e)}", file=sys.stderr)
        sys.exit(2)
    except MemoryError as e:  # sizes the user chose (--n, --patch-size, --batch-size) beyond this machine
        reason = " ".join(str(e).split()) or "MemoryError"
        print(
            f"eoreps: error: out of memory ({reason}); use smaller sizes (e.g. --n, --patch-size, "
            "--batch-size)",
            file=sys.stderr,
        )
        sys.exit(2)
    except _ABORTS as e:
        if isinstance(e.__context__, EOFError):  # click turns any EOFError into Abort: a bug, not a Ctrl-C
            raise e.__context__ from None
        print("eoreps: aborted", file=sys.stderr)
        sys.exit(130)
    except _USAGE_ERRORS as e:
        if isinstance(e, _HELP_SCREENS):  # a bare group ('eoreps zoo'): its help screen
            e.show()  # type: ignore[attr-defined]
        else:
            print(f"eoreps: error: {_usage_line(e)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("eoreps: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
