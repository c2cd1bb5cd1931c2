"""No module cycles in our packages, counting imports made only for type checking.

A cycle hidden from the interpreter behind `if TYPE_CHECKING:` is still a cycle for the reader:
neither module can be understood, tested or moved without the other. The graph is grimp's
(import-linter's own parser); cycles are its strongly connected components of modules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import grimp
from hypothesis import given
from hypothesis import strategies as st

PACKAGES = (
    "core",
    "domain",
    "streams",
    "tables",
    "sinks",
    "lighting",
    "cli",
    "api",
    "sim",
    "emulators",
    "benchmarks",
)

KNOWN_CYCLES: Mapping[frozenset[str], str] = {}


def strongly_connected(edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module, each sorted, in a stable order.
    Iterative, so a long import chain cannot hit the recursion limit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(edges[target])))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
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
    return sorted(found)


def import_graph(packages: Iterable[str]) -> grimp.ImportGraph:
    return grimp.build_graph(*packages, exclude_type_checking_imports=False, cache_dir=None)


def cycles_of(graph: grimp.ImportGraph) -> list[list[str]]:
    edges = {
        module: sorted(graph.find_modules_directly_imported_by(module)) for module in graph.modules
    }
    return strongly_connected(edges)


def describe(graph: grimp.ImportGraph, cycle: Sequence[str]) -> str:
    """The cycle's modules and, for each import between them, where it is made."""
    members = set(cycle)
    lines = [" <-> ".join(cycle)]
    for importer in cycle:
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
            for detail in graph.get_import_details(importer=importer, imported=imported):
                lines.append(
                    f"    {importer} -> {imported}  (line {detail['line_number']}: "
                    f"{detail['line_contents']})"
                )
    return "\n".join(lines)


def test_no_module_imports_itself_through_others() -> None:
    graph = import_graph(PACKAGES)
    new = [c for c in cycles_of(graph) if frozenset(c) not in KNOWN_CYCLES]
    assert not new, f"{len(new)} module cycle(s):\n" + "\n".join(describe(graph, c) for c in new)


def test_every_known_cycle_still_exists() -> None:
    """A known cycle that is gone must leave the list, so it cannot come back unnoticed."""
    present = {frozenset(c) for c in cycles_of(import_graph(PACKAGES))}
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in present]
    assert not gone, f"no longer cycles, remove them from KNOWN_CYCLES: {gone}"


def reachable(edges: Mapping[str, Sequence[str]], start: str) -> set[str]:
    seen, todo = set(), list(edges[start])
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(edges[node])
    return seen


@given(
    st.integers(1, 12).flatmap(
        lambda n: st.lists(st.lists(st.integers(0, n - 1), max_size=4), min_size=n, max_size=n)
    )
)
def test_the_search_finds_exactly_the_modules_that_reach_each_other(
    targets: list[list[int]],
) -> None:
    edges = {f"m{i}": [f"m{t}" for t in out] for i, out in enumerate(targets)}
    reach = {node: reachable(edges, node) for node in edges}
    expected = {
        frozenset(n for n in edges if n == node or (n in reach[node] and node in reach[n]))
        for node in edges
    }
    assert {frozenset(c) for c in strongly_connected(edges)} == {c for c in expected if len(c) > 1}
