"""Output folders are checked before any work (``eoreps.io.check_out_dir``), and the CLI turns a file-system
error of the user's (disk full, read-only, permission denied) into one line naming the path."""

from __future__ import annotations

import errno
import re

import pytest

from eoreps.cli import main
from eoreps.errors import DataError
from eoreps.io import check_out_dir, check_out_file


def _one_line_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert e.value.code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_check_out_dir_accepts_new_and_existing_folders_and_creates_nothing(tmp_path):
    assert check_out_dir(tmp_path) == tmp_path
    assert check_out_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert list(tmp_path.iterdir()) == []  # the write probe left nothing behind


def test_check_out_dir_refuses_a_file_and_a_path_under_a_file(tmp_path):
    f = tmp_path / "results.csv"
    f.write_text("x\n")
    with pytest.raises(DataError, match="existing file, not a folder"):
        check_out_dir(f)
    with pytest.raises(DataError, match=f"because {f} is a file"):
        check_out_dir(f / "run" / "1")
    assert f.read_text() == "x\n"


def test_check_out_file_accepts_new_files_and_refuses_folders_and_paths_under_files(tmp_path):
    assert check_out_file(tmp_path / "a" / "r.json", "--json") == tmp_path / "a" / "r.json"
    (tmp_path / "old.json").write_text("{}")
    assert check_out_file(tmp_path / "old.json", "--json") == tmp_path / "old.json"  # replaced later
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]  # nothing created
    with pytest.raises(DataError, match=re.escape(f"{tmp_path}: --json is an existing folder, not a file")):
        check_out_file(tmp_path, "--json")
    old = tmp_path / "old.json"
    with pytest.raises(DataError, match=re.escape(f"cannot write the --json file because {old} is a file")):
        check_out_file(tmp_path / "old.json" / "x" / "r.json", "--json")


@pytest.mark.parametrize("how", ["mode", "erofs"])
def test_check_out_file_refuses_a_read_only_folder(tmp_path, make_read_only, how):
    ro = tmp_path / "ro"
    ro.mkdir()
    make_read_only(ro, how)
    with pytest.raises(DataError, match=re.escape(f"not writable (nearest existing folder: {ro})")):
        check_out_file(ro / "sub" / "r.json", "--json")


@pytest.mark.parametrize("how", ["mode", "erofs"])
def test_check_out_dir_refuses_a_read_only_folder(tmp_path, make_read_only, how):
    ro = tmp_path / "ro"
    ro.mkdir()
    make_read_only(ro, how)
    with pytest.raises(DataError, match="not writable"):
        check_out_dir(ro)
    with pytest.raises(DataError, match=f"nearest existing folder: {ro}"):
        check_out_dir(ro / "new" / "run")


@pytest.mark.parametrize("how", ["mode", "erofs"])
@pytest.mark.parametrize(
    "command", [["fit", "--quick"], ["data", "generate", "--n", "4"], ["zoo", "build", "--quick"]]
)
def test_read_only_out_is_one_line_before_any_work(tmp_path, capsys, make_read_only, command, how):
    ro = tmp_path / "ro"
    ro.mkdir()
    make_read_only(ro, how)
    line = _one_line_error(capsys, [*command, "--out", str(ro / "run")])
    assert str(ro / "run") in line and "not writable" in line
    assert list(ro.iterdir()) == []


@pytest.mark.parametrize("err_no", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.ENOTDIR, errno.EISDIR])
def test_cli_turns_file_system_errors_into_one_line_naming_the_path(tmp_path, capsys, monkeypatch, err_no):
    import os

    import eoreps.data.inspect

    def fail(*args, **kwargs):
        raise OSError(err_no, os.strerror(err_no), str(tmp_path / "data" / "part-7.tif"))

    monkeypatch.setattr(eoreps.data.inspect, "inspect_path", fail)
    line = _one_line_error(capsys, ["data", "inspect", str(tmp_path)])
    assert line.startswith(f"eoreps: error: {tmp_path / 'data' / 'part-7.tif'}: {os.strerror(err_no)}")


def test_cli_keeps_the_traceback_of_other_os_errors(tmp_path, monkeypatch):
    """Only the user's file-system errnos are turned into one line; anything else is a bug and stays loud."""
    import eoreps.data.inspect

    def fail(*args, **kwargs):
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(eoreps.data.inspect, "inspect_path", fail)
    with pytest.raises(OSError, match="Bad file descriptor"):
        main(["data", "inspect", str(tmp_path)])


def test_cli_turns_out_of_memory_into_one_line(tmp_path, capsys, monkeypatch):
    """Sizes beyond the machine (e.g. ``data generate --patch-size 100000``) end in one line,
    not a traceback."""
    import eoreps.data.simeo

    def fail(*args, **kwargs):
        raise MemoryError("Unable to allocate 74.5 GiB for an array with shape (100014, 100014)")

    monkeypatch.setattr(eoreps.data.simeo, "write_simeo", fail)
    line = _one_line_error(
        capsys, ["data", "generate", "--out", str(tmp_path / "d"), "--patch-size", "100000"]
    )
    assert "out of memory (Unable to allocate 74.5 GiB" in line and "--patch-size" in line
