"""The shared :class:`eoreps.registry.Registry`: spellings, one-line errors, lazy built-ins."""

from __future__ import annotations

import sys
import types

import pytest

from eoreps.errors import ConfigError
from eoreps.registry import Registry


def test_spellings_duplicates_and_removal() -> None:
    reg: Registry[int] = Registry("widget")
    reg.add("band-prediction", 1)
    assert reg.get("Band_Prediction") == 1 and reg.canonical("band_prediction") == "band-prediction"
    assert "band_prediction" in reg and list(reg) == ["band-prediction"] and len(reg) == 1
    reg.add("band-prediction", 1)  # the same entry again: fine (a module imported twice)
    with pytest.raises(ConfigError, match="widget 'band-prediction' is already registered"):
        reg.add("band-prediction", 2)
    reg.add("band-prediction", 2, replace=True)
    assert reg.get("band-prediction") == 2
    with pytest.raises(
        ConfigError, match=r"unknown widget 'band-predictio' \(did you mean 'band-prediction'\?\)"
    ):
        reg.get("band-predictio")
    reg.remove("band-prediction")
    assert reg.names() == [] and reg.lookup("band-prediction") is None


def test_lazy_builtins_are_imported_on_first_lookup(monkeypatch) -> None:
    reg: Registry[str] = Registry(
        "gadget", lazy={"b": "toy_gadget_b", "a": ("toy_gadget_a", "toy_gadget_a2")}
    )
    imported: list[str] = []

    class Finder:  # a module whose import registers its entry, like a decorated file
        def find_spec(self, name, path=None, target=None):
            if not name.startswith("toy_gadget"):
                return None
            import importlib.machinery

            return importlib.machinery.ModuleSpec(name, self)

        def create_module(self, spec):
            return types.ModuleType(spec.name)

        def exec_module(self, module):
            imported.append(module.__name__)
            if module.__name__ != "toy_gadget_a2":
                reg.add(module.__name__[-1], module.__name__)

    monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])
    assert reg.names() == ["b", "a"] and imported == []  # listing imports nothing
    assert reg.get("a") == "toy_gadget_a" and imported == ["toy_gadget_a", "toy_gadget_a2"]  # every module
    reg.add("c", "late")
    assert reg.names() == ["b", "a", "c"] and reg.entries() == {
        "b": "toy_gadget_b",
        "a": "toy_gadget_a",
        "c": "late",
    }
    for m in ("toy_gadget_a", "toy_gadget_a2", "toy_gadget_b"):
        sys.modules.pop(m, None)


def test_a_listing_its_module_does_not_fill_is_a_bug(monkeypatch) -> None:
    reg: Registry[str] = Registry("gizmo", lazy={"x": "json"})  # json registers no gizmo
    with pytest.raises(RuntimeError, match="json did not register gizmo 'x'"):
        reg.get("x")
