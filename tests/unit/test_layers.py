"""The packages of concertops form layers without cycles: the model at the bottom imports nothing else of
the project, and no two packages import each other, directly or through a third."""

from __future__ import annotations

import grimp

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
