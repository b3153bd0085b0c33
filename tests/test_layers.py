"""The package layers are one-way (docs/architecture.md).

Every ``tribes`` import is counted, at module level or inside a function, so a cycle
cannot hide behind a deferred import. A package may import its own modules, packages of
lower layers, and, inside the stage layer, stages that come earlier in the pipeline.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tribes"

# bottom to top; a tuple is an ordered group (each may import the ones before it), a
# frozenset a group of peers that never import each other
LAYERS: list[tuple[str, ...] | frozenset[str]] = [
    ("tribes", "errors", "config", "settings"),  # "tribes": the package's __init__
    ("engine", "workspace"),
    frozenset({"stats", "http", "synth"}),
    ("privacy",),
    ("store",),
    ("ingest", "prep", "features"),
    frozenset({"models", "analysis"}),
    ("monitor", "activate", "realtime"),
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


def imports(root: Path = SRC) -> list[tuple[str, str, int]]:
    """Every (module, imported tribes module, line) under ``root``, nested imports too."""
    found = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    targets = [".".join(base + ([node.module] if node.module else []))]
                else:
                    targets = [node.module or ""]
                if targets == ["tribes"]:  # from tribes import x: x is a module or a name
                    targets = [f"tribes.{a.name}" if _is_module(root, a.name) else "tribes"
                               for a in node.names]
            else:
                continue
            found += [(module, t, node.lineno) for t in targets
                      if t == "tribes" or t.startswith("tribes.")]
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


@pytest.mark.parametrize(("module", "target", "ok"), [
    ("tribes.prep.run", "tribes.ingest.spec", True),      # a later stage uses an earlier one
    ("tribes.ingest.loader", "tribes.prep.run", False),   # not the other way round
    ("tribes.models.run", "tribes.analysis.ab", False),   # peers
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
