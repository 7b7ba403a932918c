"""``eoreps.run_record.RunSetting``: the one mechanism behind ``precision.json`` and ``loader.json`` (a run
folder keeps what it resolved: reused on ``auto``, an explicit conflicting value refused or warned about)."""

from __future__ import annotations

import json

import pytest

from eoreps.errors import ConfigError
from eoreps.run_record import AUTO, RunSetting


def _setting(policy: str) -> RunSetting[int]:
    return RunSetting("size.json", encode=lambda n: {"size": n}, decode=lambda rec: int(rec["size"]),
                      policy=policy, conflict=lambda path, was, now: f"{path}: was {was}, now {now}",
                      compatible=lambda a, b: a // 10 == b // 10)  # 3 and 7 agree, 3 and 13 do not


class _Resolver:
    """``resolve()`` returning ``value``, counting its calls."""

    def __init__(self, value: int) -> None:
        self.value, self.calls = value, 0

    def __call__(self) -> int:
        self.calls += 1
        return self.value


def test_a_fresh_run_stores_a_resume_on_auto_reuses_without_resolving(tmp_path):
    s = _setting("error")
    assert s.settle(tmp_path, AUTO, False, _Resolver(5)) == 5
    assert json.loads((tmp_path / "size.json").read_text()) == {"size": 5, "asked": "auto"}
    again = _Resolver(42)  # what this machine would resolve now
    assert s.settle(tmp_path, AUTO, True, again) == 5 and again.calls == 0
    assert s.settle(tmp_path, AUTO, False, again) == 42 and again.calls == 1  # not resuming: resolved anew


@pytest.mark.parametrize("policy", ["error", "warn"])
def test_an_explicit_conflicting_value_follows_the_policy(tmp_path, capsys, policy):
    s = _setting(policy)
    s.store(tmp_path, 5, AUTO)
    assert s.settle(tmp_path, 7, True, _Resolver(7)) == 7  # compatible: used and stored, no message
    assert capsys.readouterr().out == "" and s.stored(tmp_path) == 7
    if policy == "error":
        with pytest.raises(ConfigError, match=f"^{tmp_path / 'size.json'}: was 7, now 13$"):
            s.settle(tmp_path, 13, True, _Resolver(13))
        assert s.stored(tmp_path) == 7  # nothing written
    else:
        assert s.settle(tmp_path, 13, True, _Resolver(13)) == 13
        lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
        assert lines == [f"warning: {tmp_path / 'size.json'}: was 7, now 13"]
        assert json.loads((tmp_path / "size.json").read_text()) == {"size": 13, "asked": 13}


@pytest.mark.parametrize("content", ["{not json", "[]", '{"size": "big"}', '{"other": 1}', ""])
def test_an_unreadable_record_counts_as_none_and_previous_fills_in(tmp_path, content):
    s = _setting("error")
    assert s.stored(tmp_path) is None  # absent
    (tmp_path / "size.json").write_text(content)
    assert s.stored(tmp_path) is None
    fresh = _Resolver(8)
    assert s.settle(tmp_path, AUTO, True, fresh, previous=3) == 3 and fresh.calls == 0  # an older folder
    with pytest.raises(ConfigError):  # previous conflicts with an explicit value like a stored one
        s.settle(tmp_path, 13, True, _Resolver(13), previous=3)
    assert s.settle(tmp_path, AUTO, True, fresh) == 8 and fresh.calls == 1  # nothing kept: resolved
    assert s.stored(tmp_path) == 8


def test_replace_keeps_the_other_fields(tmp_path):
    s = _setting("warn")
    s.store(tmp_path, 4, "auto")
    s.replace(s.path(tmp_path), 2)
    assert json.loads(s.path(tmp_path).read_text()) == {"size": 2, "asked": "auto"}


def test_an_explicit_conflict_is_refused_before_resolving(tmp_path, capsys):
    s = RunSetting("size.json", encode=lambda n: {"size": n}, decode=lambda rec: int(rec["size"]),
                   policy="error", conflict=lambda path, was, now: f"{path}: was {was}, now {now}",
                   compatible=lambda a, b: a // 10 == b // 10,
                   explicit=lambda asked: asked if isinstance(asked, int) else None)
    s.store(tmp_path, 5, AUTO)
    never = _Resolver(13)  # e.g. a precision probe that would take seconds
    with pytest.raises(ConfigError, match=f"^{tmp_path / 'size.json'}: was 5, now 13$"):
        s.settle(tmp_path, 13, True, never)
    assert never.calls == 0 and s.stored(tmp_path) == 5 and capsys.readouterr().out == ""
    same = _Resolver(7)
    assert s.settle(tmp_path, 7, True, same) == 7 and same.calls == 1  # compatible: resolved and stored
    told = _Resolver(13)  # an ask the setting cannot read without resolving: resolved, then refused
    with pytest.raises(ConfigError, match="was 7, now 13"):
        s.settle(tmp_path, "thirteen", True, told)
    assert told.calls == 1
