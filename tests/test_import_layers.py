"""No import circle in eoreps (issue 21, item 4).

The proof is a walk over the module-level imports of ``src/eoreps`` (``ast``; imports inside functions and
under ``if TYPE_CHECKING:`` are not executed at import time and are left out): the graph of
``module -> eoreps module it imports`` must have no cycle. A fresh interpreter then imports every module,
so a module that only works when imported in a particular order fails here too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted((SRC / "eoreps").rglob("*.py")):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _top_level_imports(tree: ast.Module, name: str, is_pkg: bool, modules: dict[str, Path],
                       lazy: bool = False) -> set[str]:
    """eoreps modules imported at module level by module ``name`` (``lazy``: inside functions too)."""
    found: set[str] = set()
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if lazy and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.With
                               | ast.For):
            stack.extend([*node.body, *getattr(node, "orelse", [])])
        elif isinstance(node, ast.If):
            if not _is_type_checking(node):
                stack.extend(node.body)
            stack.extend(node.orelse)
        elif isinstance(node, ast.Try):
            stack.extend([*node.body, *node.orelse, *node.finalbody])
            stack.extend(s for h in node.handlers for s in h.body)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join([*pkg, base] if base else pkg)
            subs = {f"{base}.{a.name}" for a in node.names} & set(modules)  # `from pkg import submodule`
            found.update(subs)
            if len(subs) < len(node.names):  # names defined in base itself
                found.add(base)
    return {m for m in found if m in modules and m != name}


def import_graph(lazy: bool = False) -> dict[str, set[str]]:
    """``{module: eoreps modules it imports at module level}`` for every module of ``src/eoreps``
    (``lazy``: counting the imports inside functions too)."""
    modules = _modules()
    return {name: _top_level_imports(ast.parse(p.read_text()), name, p.name == "__init__.py", modules, lazy)
            for name, p in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return path[path.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        state[n] = 2
        path.pop()
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_the_walk_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    tree = ast.parse("import eoreps.x\nfrom eoreps import y\nfrom . import z\nfrom .q import f\n"
                     "if TYPE_CHECKING:\n    import eoreps.w\n"
                     "def f():\n    import eoreps.v\n")
    mods = {m: Path() for m in ("eoreps.x", "eoreps.y", "eoreps.p.z", "eoreps.w", "eoreps.v", "eoreps.p.q",
                                "eoreps.p.r")}
    want = {"eoreps.x", "eoreps.y", "eoreps.p.z", "eoreps.p.q"}
    assert _top_level_imports(tree, "eoreps.p.r", False, mods) == want
    assert "eoreps.v" in _top_level_imports(tree, "eoreps.p.r", False, mods, lazy=True)


def test_no_import_cycle_in_eoreps():
    graph = import_graph()
    assert len(graph) > 100 and "eoreps.evaluation.pretraining" in graph["eoreps.evaluation.study"]
    assert "eoreps.evaluation.methods" in graph["eoreps.evaluation.encoders"]
    assert "eoreps.zoo.chunks" in graph["eoreps.zoo.ray_backend"]
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_every_module_imports_in_a_fresh_interpreter():
    names = sorted(_modules())
    code = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\n"
    r = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_no_circle_in_the_workflows_even_through_function_level_imports():
    """The evaluation workflows (methods < encoders < pretraining < study) and the zoo build (chunks <
    ray_backend < build) do not import each other back, not even lazily inside a function."""
    graph = import_graph(lazy=True)
    sub = {n: {m for m in deps if m.startswith(("eoreps.evaluation", "eoreps.zoo"))}
           for n, deps in graph.items() if n.startswith(("eoreps.evaluation", "eoreps.zoo"))}
    assert "eoreps.zoo.ray_backend" in sub["eoreps.zoo.build"]
    cycle = find_cycle(sub)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_no_circle_through_function_level_imports_in_registries_progress_and_cli():
    """The backbone and zoo-architecture registries (the zoo names live in ``models.arch_registry``), the
    progress bars (``lightning_progress`` above ``progress``) and the CLI generator (``cli_config`` below
    ``commands.common``) do not import each other back, not even inside a function."""
    prefixes = (
        "eoreps.models",
        "eoreps.zoo",
        "eoreps.progress",
        "eoreps.lightning_progress",
        "eoreps.training",
        "eoreps.checkpoints",
        "eoreps.cli_config",
        "eoreps.commands",
        "eoreps.registry",
    )
    graph = import_graph(lazy=True)
    sub = {
        n: {m for m in deps if m.startswith(prefixes)} for n, deps in graph.items() if n.startswith(prefixes)
    }
    assert "eoreps.models.arch_registry" in sub["eoreps.models.registry"]
    assert "eoreps.progress" in sub["eoreps.lightning_progress"]
    assert "eoreps.cli_config" in sub["eoreps.commands.common"]
    cycle = find_cycle(sub)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])
