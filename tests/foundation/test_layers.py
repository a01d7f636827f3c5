"""The import rule, read from the source: layers import downward only, and the graph is visible.

``kernel`` is the floor (imports neither ``app`` nor ``ingest``), ``ingest`` stands on it (never
imports ``app``), ``app`` composes both. Every import counts, also one inside a function or
under ``TYPE_CHECKING``: a hidden import is still an edge. An import made inside a function hides
the graph from a reader, so each one must say why on its line or on the comment line above its
group. The walk is over the AST of every module, so this test needs no extra tool in CI.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from kernel import locks

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("kernel", "ingest", "app")
# What each package must never import (directly, at any depth of the module).
FORBIDDEN: dict[str, set[str]] = {"kernel": {"app", "ingest"}, "ingest": {"app"}, "app": set()}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module's file, relative to the root
    package: str  # the importing module's top-level package
    target: str  # the imported module, absolute
    line: int
    in_function: bool


def _absolute(node: ast.ImportFrom, path: Path) -> str:
    if node.level == 0:
        return node.module or ""
    # The package a relative import starts from: the module's folder (also for an __init__).
    package = list(path.relative_to(ROOT).parts[:-1])
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imports(path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(ROOT).as_posix()
    top = path.relative_to(ROOT).parts[0]
    found: list[Import] = []

    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(rel, top, a.name, child.lineno, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                found.append(Import(rel, top, _absolute(child, path), child.lineno, in_function))
            walk(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    walk(tree, False)
    return found


def _all_imports() -> list[Import]:
    out: list[Import] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            out.extend(_imports(path))
    return out


IMPORTS = _all_imports()


def _package(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_upward_imports(package: str) -> None:
    wrong = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in IMPORTS
        if i.package == package and _package(i.target) in FORBIDDEN[package]
    ]
    assert not wrong, f"{package} must not import {sorted(FORBIDDEN[package])}:\n" + "\n".join(wrong)


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path, or None (depth-first search, three colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_cycle_between_packages() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for i in IMPORTS:
        source, target = i.package, _package(i.target)
        if source != target and target in PACKAGES:
            edges[source].add(target)
    assert _cycle(edges) is None, f"import cycle between packages: {' -> '.join(_cycle(edges) or [])}"


def test_cycle_finder_finds_a_cycle() -> None:
    # The rule above is only as good as the search: a graph with a cycle must be caught.
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"app": {"ingest", "kernel"}, "ingest": {"kernel"}}) is None


def _has_reason(lines: list[str], line: int) -> bool:
    """A comment on the import's line, or on the line above the group of imports it belongs to."""
    index = line - 1
    if "#" in lines[index]:
        return True
    while index > 0 and lines[index - 1].strip().startswith(("import ", "from ")):
        index -= 1
        if "#" in lines[index]:
            return True
    return index > 0 and lines[index - 1].strip().startswith("#")


def test_function_level_imports_say_why() -> None:
    silent: list[str] = []
    sources: dict[str, list[str]] = {}
    for i in IMPORTS:
        if not i.in_function:
            continue
        lines = sources.setdefault(i.module, (ROOT / i.module).read_text(encoding="utf-8").splitlines())
        if not _has_reason(lines, i.line):
            silent.append(f"{i.module}:{i.line} {i.target}")
    assert not silent, (
        "imports inside functions hide the import graph; move them to the module top, "
        "or say why (measured) in a comment:\n" + "\n".join(silent)
    )


def test_advisory_lock_ids_are_distinct() -> None:
    ids = list(locks.FIXED_LOCKS.values())
    assert len(set(ids)) == len(ids), locks.FIXED_LOCKS
    prefixes = list(locks.LOCK_PREFIXES.values())
    assert len(set(prefixes)) == len(prefixes), locks.LOCK_PREFIXES
    # No prefix may be the start of another, or two families could hash the same text.
    assert not [(a, b) for a in prefixes for b in prefixes if a != b and b.startswith(a)]


def _endpoint_modules() -> set[str]:
    """Modules of app/ that declare a router: the HTTP edge, which nothing else should import."""
    found = set()
    for path in sorted((ROOT / "app").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "router" for t in node.targets
            ):
                found.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


def test_interop_reads_through_repositories_not_endpoints() -> None:
    # NGSI-LD and DATEX II out share the REST queries through app/read/, not by importing endpoints.
    endpoints = _endpoint_modules()
    assert "app.api.parking" in endpoints  # the detector sees what it must
    wrong = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in IMPORTS
        if i.module.startswith(("app/interop/", "app/read/")) and i.target in endpoints
    ]
    assert not wrong, "\n".join(wrong)
