"""glibc heap reuse for zoo training (eoreps.zoo.memory)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

CODE = "from eoreps.zoo.memory import retain_freed_memory as r; a = r(); print(a, r() == a)"


def _run(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "EOREPS_MALLOC_TUNING"}
    if env_value is not None:
        env["EOREPS_MALLOC_TUNING"] = env_value
    return subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_retain_freed_memory_applies_once_and_can_be_switched_off():
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert _run(None) == "True True"  # in effect, and a second call changes nothing
    assert _run("0") == "False True"
