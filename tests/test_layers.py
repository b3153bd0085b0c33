"""The package layers are one-way (docs/architecture.md), and so are the imports between
the modules of one package; another package is reached through its façade.

Every ``tribes`` import is counted, at module level or inside a function (or under
``TYPE_CHECKING``), and so is ``importlib.import_module("tribes....")`` with a constant
name, so a cycle cannot hide behind a deferred import. A package may import its own
modules, packages of lower layers, and, inside the stage layer, stages that come earlier
in the pipeline; its modules may not import each other in a circle. From another package
it imports the names its ``__init__`` lists in ``__all__`` (``from tribes.store import
store_version``), never one of its modules: those are the package's implementation.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tribes"

# bottom to top; a tuple is an ordered group (each may import the ones before it), a
# frozenset a group of peers that never import each other
LAYERS: list[tuple[str, ...] | frozenset[str]] = [
    ("tribes", "lazy", "errors", "config", "settings"),  # "tribes": the package's __init__
    ("engine", "workspace"),
    frozenset({"stats", "http", "hooks", "synth"}),
    ("notify",),  # alerts to webhooks: hooks' endpoints, http's signed POSTs
    ("privacy",),
    ("store",),
    ("ingest", "prep", "features"),
    frozenset({"models", "analysis"}),
    ("monitor", "sync", "realtime"),
    ("ops",),
    frozenset({"service", "report"}),
    ("api",),
    ("cli", "__main__"),
]
# the root package serves the public API's names lazily (tribes.open, tribes.Workspace)
FACADE = {("tribes", "tribes.api")}


def _rank() -> dict[str, tuple[int, int]]:
    """package -> (layer, position inside an ordered group; 0 for peers)."""
    rank: dict[str, tuple[int, int]] = {}
    for i, group in enumerate(LAYERS):
        if isinstance(group, frozenset):
            rank.update({p: (i, 0) for p in group})
        else:
            rank.update({p: (i, j) for j, p in enumerate(group)})
    return rank


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "tribes"


def _module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_module(root: Path, name: str) -> bool:
    return (root / name).is_dir() or (root / f"{name}.py").exists()


def _submodule(root: Path, module: str, name: str) -> str:
    """``from module import name``: the module ``module.name`` when there is one (a
    submodule), else ``module`` (``name`` is defined there)."""
    folder = root.parent.joinpath(*module.split("."))
    return f"{module}.{name}" if _is_module(folder, name) else module


def _import_module_call(node: ast.AST) -> ast.Call | None:
    """``node`` if it is ``importlib.import_module(...)`` (or ``import_module(...)``)."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return node if called == "import_module" else None


def _names_a_module(root: Path, text: str) -> bool:
    """``text`` is the dotted name of a module under ``root`` (``tribes.x.y``)."""
    parts = text.split(".")
    if len(parts) < 2 or parts[0] != root.name or not all(p.isidentifier() for p in parts):
        return False
    return _is_module(root.parent.joinpath(*parts[:-1]), parts[-1])


def imports(root: Path = SRC) -> list[tuple[str, str, int]]:
    """Every (module, imported tribes module, line) under ``root``, nested imports too.

    ``import_module("tribes....")`` is an import of that module; a module that calls
    ``import_module`` with a name computed at run time (a registry of modules by name)
    imports every module whose dotted name it holds as a string.
    """
    found = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        by_name = False
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                # from package import x: x is a module of it, or a name it defines
                targets = [_submodule(root, origin, a.name) for a in node.names]
            elif (call := _import_module_call(node)) is not None:
                arg = call.args[0]
                if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                    by_name = True
                    continue
                targets = [arg.value]
            else:
                continue
            found += [(module, t, node.lineno) for t in targets
                      if t == "tribes" or t.startswith("tribes.")]
        if by_name:
            found += [(module, n.value, n.lineno) for n in ast.walk(tree)
                      if isinstance(n, ast.Constant) and isinstance(n.value, str)
                      and _names_a_module(root, n.value)]
    return found


def violations(found: list[tuple[str, str, int]]) -> list[str]:
    rank = _rank()
    bad = []
    for module, target, line in found:
        src, dst = _package(module), _package(target)
        if src == dst or (module, target) in FACADE:
            continue
        if src not in rank or dst not in rank:
            bad.append(f"{module}:{line} imports {target}: a package missing from LAYERS")
            continue
        (ls, ps), (ld, pd_) = rank[src], rank[dst]
        peers = ls == ld and isinstance(LAYERS[ls], frozenset)
        if ld > ls or (ld == ls and (peers or pd_ > ps)):
            bad.append(f"{module}:{line} imports {target} ({src} may not import {dst})")
    return bad


def facade_violations(found: list[tuple[str, str, int]]) -> list[str]:
    """Imports of a module inside another package instead of that package's façade."""
    bad = []
    for module, target, line in found:
        src, dst = _package(module), _package(target)
        if src == dst or (module, target) in FACADE or target.count(".") < 2:
            continue  # its own package, the root's lazy API, or a package (its façade)
        bad.append(f"{module}:{line} imports {target}, a module of {dst}: import the name "
                   f"from the façade instead (from tribes.{dst} import ...; add it to "
                   f"__all__ in {dst}/__init__.py if it is not there)")
    return bad


def facades(root: Path = SRC) -> list[str]:
    """The packages that have a façade: every package under ``root`` but the CLI (the
    top: nothing imports it)."""
    return sorted(p.name for p in root.iterdir()
                  if (p / "__init__.py").exists() and p.name != "cli")


def cycles(found: list[tuple[str, str, int]]) -> list[list[str]]:
    """The import cycles among the modules of each package (its strongly connected
    components of more than one module, or a module importing itself)."""
    graph: dict[str, set[str]] = {}
    for module, target, _ in found:
        if _package(module) == _package(target) and _package(module) != "tribes":
            graph.setdefault(module, set()).add(target)
            graph.setdefault(target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found_cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found_cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found_cycles


def test_every_package_has_a_layer() -> None:
    packages = {_module_name(p).split(".")[1] for p in SRC.rglob("*.py")
                if _module_name(p) != "tribes"}
    assert packages - set(_rank()) == set()


def test_layers_are_one_way() -> None:
    bad = violations(imports())
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_the_check_sees_nested_and_relative_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "tribes"
    (pkg / "store").mkdir(parents=True)
    (pkg / "engine").mkdir()
    (pkg / "store" / "__init__.py").write_text("")
    (pkg / "engine" / "__init__.py").write_text("")
    (pkg / "engine" / "io.py").write_text(
        "def f():\n    from tribes.store import tables\n    from ..store import x\n")
    found = imports(pkg)
    assert [(m, t) for m, t, _ in found] == [("tribes.engine.io", "tribes.store")] * 2
    assert len(violations(found)) == 2


def test_imports_across_packages_go_through_facades() -> None:
    bad = facade_violations(imports())
    assert not bad, "imports of another package's modules:\n" + "\n".join(bad)


def test_the_facade_check_sees_module_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "tribes"
    for name in ("store", "ops"):
        (pkg / name).mkdir(parents=True)
    (pkg / "store" / "__init__.py").write_text("from tribes.store.segments import x\n")
    (pkg / "store" / "segments.py").write_text("x = 1\n")
    (pkg / "store" / "db.py").write_text("from tribes.store.segments import x\n")
    (pkg / "ops" / "__init__.py").write_text("")
    (pkg / "ops" / "run.py").write_text(
        "from tribes.store.segments import x\n"       # a module of another package
        "from tribes.store import segments\n"         # the module as an object
        "from tribes.store import x as y\n"           # the façade: accepted
        "def f():\n    import importlib\n"
        "    return importlib.import_module('tribes.store.segments')\n")
    bad = facade_violations(imports(pkg))
    assert [b.split(" imports ")[0] for b in bad] == [
        "tribes.ops.run:1", "tribes.ops.run:2", "tribes.ops.run:6"]
    assert all("from tribes.store import" in b for b in bad)
    # inside its own package a module imports its siblings
    assert not [b for b in bad if b.startswith("tribes.store")]


@pytest.mark.parametrize("package", facades())
def test_facade_lists_names_it_has(package: str) -> None:
    module = importlib.import_module(f"tribes.{package}")
    names = getattr(module, "__all__", None)
    assert names, f"tribes.{package} has no __all__"
    assert len(names) == len(set(names)), f"tribes.{package}.__all__ repeats a name"
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"tribes.{package}.__all__ lists names it lacks: {missing}"
    # a name that is also a module of the package would hide it (or be hidden by it)
    shadowing = [n for n in names if _is_module(SRC / package, n)]
    assert not shadowing, f"tribes.{package}: {shadowing} name modules of the package too"


def test_facades_leave_the_heavy_libraries_alone() -> None:
    """Importing every façade imports neither the modelling libraries (seconds) nor the
    optional extras; the names of modules that do are served on first use."""
    heavy = ("sklearn", "scipy", "statsmodels", "plotly", "fastapi", "redis", "pyspark")
    code = ("import importlib, sys\n"
            f"for p in {facades()!r}:\n    importlib.import_module('tribes.' + p)\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True)
    assert r.stdout.strip() == "[]"


def test_opening_a_workspace_leaves_the_modelling_libraries_alone() -> None:
    """``tribes.open(ws).prep()`` / ``.features()`` in a fresh process (an orchestrator's
    task, the benchmarks) do not pay seconds of scikit-learn and SciPy imports; a
    segmentation or a drift check loads them when it runs."""
    code = ("import sys, tribes\n"
            "tribes.Workspace\n"  # the Python API with every stage it can call
            "print(sorted(m for m in ('sklearn', 'scipy', 'statsmodels', 'plotly')"
            " if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True)
    assert r.stdout.strip() == "[]"


def test_no_import_cycle_inside_a_package() -> None:
    found = cycles(imports())
    assert not found, "modules importing each other in a circle:\n" + "\n".join(
        " <-> ".join(c) for c in found)


def test_the_check_sees_cycles_and_import_module_strings(tmp_path: Path) -> None:
    pkg = tmp_path / "tribes" / "engine"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from tribes.engine.base import Engine\n")
    (pkg / "base.py").write_text(
        "import importlib\n\ndef connect():\n"
        "    return importlib.import_module('tribes.engine.duck').connect()\n")
    (pkg / "duck.py").write_text("from tribes.engine import base\n")
    found = imports(tmp_path / "tribes")
    assert ("tribes.engine.base", "tribes.engine.duck") in [(m, t) for m, t, _ in found]
    assert ("tribes.engine.duck", "tribes.engine.base") in [(m, t) for m, t, _ in found]
    assert cycles(found) == [["tribes.engine.base", "tribes.engine.duck"]]
    (pkg / "duck.py").write_text("from tribes.engine.base import Engine\n")
    assert cycles(imports(tmp_path / "tribes")) == [
        ["tribes.engine.base", "tribes.engine.duck"]]
    (pkg / "duck.py").write_text("import ibis\n")
    assert cycles(imports(tmp_path / "tribes")) == []
    # a registry: module names held as strings, imported by a computed name
    (pkg / "base.py").write_text(
        "import importlib\n\nBACKENDS = {'duck': 'tribes.engine.duck', 'x': 'tribes.nope'}\n"
        "def connect(name):\n    return importlib.import_module(BACKENDS[name]).connect()\n")
    (pkg / "duck.py").write_text("from tribes.engine import Engine\n")
    found = imports(tmp_path / "tribes")
    assert [(m, t) for m, t, _ in found if m == "tribes.engine.base"] == [
        ("tribes.engine.base", "tribes.engine.duck")]
    assert cycles(found) == [["tribes.engine", "tribes.engine.base", "tribes.engine.duck"]]


def test_only_ops_sends_alerts() -> None:
    """Alerts reach the webhooks through one notifier, called by orchestration only: the
    API, the CLI and the service get their deliveries from an ops function."""
    callers = sorted({f"{module}:{line}" for module, target, line in imports()
                      if target == "tribes.notify" and _package(module) != "ops"})
    assert callers == []


@pytest.mark.parametrize(("module", "target", "ok"), [
    ("tribes.prep.prep_stage", "tribes.ingest.spec", True),      # a later stage uses an earlier one
    ("tribes.ingest.loader", "tribes.prep.prep_stage", False),   # not the other way round
    ("tribes.models.segmentation", "tribes.analysis.ab", False),   # peers
    ("tribes.cli.run_cmd", "tribes.ops.pipeline", True),
    ("tribes.ops.pipeline", "tribes.cli.common", False),
])
def test_rule(module: str, target: str, ok: bool) -> None:
    assert (violations([(module, target, 1)]) == []) is ok


def test_run_settings_are_read_from_the_configuration_in_one_place() -> None:
    """The session timeout and the consent mode come from tribes.settings.RunSettings
    (built at the CLI or service edge and passed down); no other module reads them from
    the configuration."""
    readers = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "settings.py" and path.parent == SRC:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                    and (node.value.attr, node.attr) in {("prep", "session_timeout"),
                                                         ("privacy", "consent_mode")}):
                readers.append(f"{_module_name(path)}:{node.lineno}")
    assert readers == []


# where a run's settings are resolved from the configuration and the command's options:
# the CLI, the Python API, the service and the scheduler (each scheduled run)
EDGES = ("tribes.cli", "tribes.api", "tribes.service", "tribes.ops.schedule", "tribes.settings")


def resolved_below_the_edges(root: Path = SRC) -> list[str]:
    """Calls, outside the edges, of ``RunSettings.resolve`` and of ``parse_duration`` on
    an attribute (a configured duration: those are timedeltas once the configuration is
    read)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        edge = any(module == e or module.startswith(e + ".") for e in EDGES)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if (not edge and isinstance(func, ast.Attribute) and func.attr == "resolve"
                    and isinstance(func.value, ast.Name) and func.value.id == "RunSettings"):
                found.append(f"{module}:{node.lineno} resolves the run settings")
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if (not edge and name == "parse_duration" and node.args
                    and isinstance(node.args[0], ast.Attribute)):
                found.append(f"{module}:{node.lineno} parses a configured duration")
    return found


def test_run_settings_are_resolved_at_the_edges_only() -> None:
    """Stages get a RunContext (workspace, engine, settings) and never resolve the
    settings again, so a command's options reach every stage."""
    found = resolved_below_the_edges()
    assert not found, "\n".join(found)


def test_the_check_sees_a_resolve_below_the_edge(tmp_path: Path) -> None:
    pkg = tmp_path / "tribes"
    (pkg / "store").mkdir(parents=True)
    (pkg / "cli").mkdir()
    (pkg / "store" / "exports.py").write_text(
        "def f(ws):\n    return RunSettings.resolve(ws.config).consent_mode\n"
        "def g(cfg):\n    return parse_duration(cfg.timeout)\n")
    (pkg / "cli" / "x.py").write_text("s = RunSettings.resolve(ws.config)\n")
    assert sorted(resolved_below_the_edges(pkg)) == [
        "tribes.store.exports:2 resolves the run settings",
        "tribes.store.exports:4 parses a configured duration"]
