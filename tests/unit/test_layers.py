"""The packages of concertops form layers without cycles: the model at the bottom imports nothing else of
the project, no two packages import each other, directly or through a third, and no two files anywhere
import each other, directly or through others."""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest

GRAPH = grimp.build_graph("concertops")
PACKAGES = sorted(GRAPH.find_children("concertops"))


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _package_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for module in GRAPH.modules:
        if module == "concertops":
            continue
        for imported in GRAPH.find_modules_directly_imported_by(module):
            source, target = _package(module), _package(imported)
            if source != target and source in edges and target in edges:
                edges[source].add(target)
    return edges


def test_the_model_imports_nothing_else_of_concertops() -> None:
    assert _package_edges()["concertops.model"] == set()


def test_no_two_packages_import_each_other_even_through_a_third() -> None:
    edges = _package_edges()

    def reaches(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = sorted(p for p in edges if p in reaches(p))
    assert cycles == [], f"packages on an import cycle: {cycles}"


def test_config_knows_no_devstack() -> None:
    assert "concertops.devstack" not in _package_edges()["concertops.config"]


def _file_cycles(graph: grimp.ImportGraph = GRAPH) -> list[list[str]]:
    """Every circle of files (Tarjan's strongly connected components of the module graph), type-only
    imports included: a circle a reader must hold in mind is one whether or not it runs."""
    modules = sorted(graph.modules)
    edges = {m: sorted(set(graph.find_modules_directly_imported_by(m)) & set(modules)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for nxt in edges[module]:
            if nxt not in index:
                visit(nxt)
                low[module] = min(low[module], low[nxt])
            elif nxt in on_stack:
                low[module] = min(low[module], index[nxt])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in modules:
        if module not in index:
            visit(module)
    return circles


def test_no_circle_of_files_anywhere() -> None:
    assert _file_cycles() == []


def test_the_circle_finder_sees_a_circle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: two files of one package that import each other are found."""
    package = tmp_path / "circled"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from circled import b\n")
    (package / "b.py").write_text("def f():\n    from circled import a\n")
    (package / "c.py").write_text("from circled import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _file_cycles(grimp.build_graph("circled")) == [["circled.a", "circled.b"]]
