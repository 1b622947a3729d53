"""The layout's seams, read from the code's own imports (docs/design.md, "Layout"):

- ``controller/bohb`` imports nothing of the project outside itself (no ``controller.*``, no
  ``trainer.*``): the optimiser is pure and could be lifted out as it is;
- ``controller/backends`` never imports the sweep loop, the report or the CLI: the loop drives
  backends through ``controller.backends.base`` alone;
- ``trainer`` imports nothing of ``controller`` (the trainer image needs only its own package);
- the store and the trial contract import nothing of the trainer's torch side;
- no import cycle anywhere between the project's modules (function-level imports included).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("controller", "trainer", "benchmarks")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[str]:
    """Every project module that ``name`` imports, at any depth of its code."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import submodule` imports the submodule itself
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        for target in targets:
            while target and target not in MODULES:  # `import a.b.c` of a name inside a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


GRAPH = {name: set(_imports(name, path)) for name, path in MODULES.items()}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{src} imports {dst}"
        for src, dsts in sorted(GRAPH.items())
        if _within(src, package)
        for dst in sorted(dsts)
        if any(_within(dst, f) for f in forbidden)
    ]


def test_the_graph_sees_the_seams() -> None:
    """The walker itself: it finds known edges, so an empty violation list means something."""
    assert "controller.bohb.optimizer" in GRAPH["controller.bohb"]
    assert "controller.bohb.kde" in GRAPH["controller.bohb.model"]  # `from pkg import module`
    assert "controller.backends.base" in GRAPH["controller.sweep.scheduler"]
    assert "trainer.store.s3" in GRAPH["trainer.store"]  # a function-level import counts


def test_the_optimiser_imports_nothing_of_the_project() -> None:
    outside = [
        f"{src} imports {dst}"
        for src, dsts in sorted(GRAPH.items())
        if _within(src, "controller.bohb")
        for dst in sorted(dsts)
        if not _within(dst, "controller.bohb")
    ]
    assert outside == []


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        (
            "controller.backends",
            ("controller.sweep", "controller.submit", "controller.report", "controller.cli"),
        ),
        ("controller.sweep", ("controller.submit", "controller.report", "controller.cli")),
        ("controller.submit", ("controller.report", "controller.cli")),
        ("trainer", ("controller", "benchmarks")),
        ("trainer.store", ("trainer.train", "trainer.model", "trainer.run", "trainer.data")),
        ("trainer.contract", ("trainer.train", "trainer.model", "trainer.run", "trainer.data")),
    ],
)
def test_no_import_crosses_a_seam(package: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(package, forbidden) == []


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(GRAPH):
        if root in index:
            continue
        work = [(root, iter(sorted(GRAPH[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(GRAPH[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle() -> None:
    assert _cycles() == []


def test_the_cycle_finder_finds_a_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        GRAPH, "trainer.store.base", GRAPH["trainer.store.base"] | {"trainer.store.s3"}
    )
    assert ["trainer.store.base", "trainer.store.s3"] in _cycles()
