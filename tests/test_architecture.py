"""The import graph of both apps: no cycles, realtime_auth standalone, a query language without auth, layers downward.

The graph is grimp's, built from every ``import`` statement in the source: module level, inside functions and
methods, and under ``if TYPE_CHECKING:`` (all of them name a dependency; a function-level import is how a cycle
hides). ``test_grimp_sees_imports_inside_functions`` proves the first on a package of its own. Imports by string
(``import_string`` of a setting) are configuration, not code, and are not in the graph.
"""

from __future__ import annotations

import copy
import itertools
import textwrap
from collections.abc import Iterable
from pathlib import Path

import grimp
import pytest

APPS = ("realtime_auth", "likha_realtime")
KERNEL = "realtime_auth.wire"

# Lowest first. A module belongs to the layer of its longest matching name, so ``realtime_auth.wire`` sits below
# the rest of ``realtime_auth``. Modules of one layer may import each other (the cycle test still applies).
LAYERS: tuple[tuple[str, ...], ...] = (
    (KERNEL,),
    ("realtime_auth",),
    (
        "likha_realtime.wire",
        "likha_realtime.conf",
        "likha_realtime.node",
        "likha_realtime.origins",
        "likha_realtime.limits",
        "likha_realtime.oversize",
        "likha_realtime.faults",
        "likha_realtime.layers",
        "likha_realtime.db",
        "likha_realtime.metrics",
        "likha_realtime.health",
    ),
    ("likha_realtime.query",),
    ("likha_realtime.access",),
    ("likha_realtime.events", "likha_realtime.logs", "likha_realtime.backpressure"),
    ("likha_realtime.graphql", "likha_realtime.sockets", "likha_realtime.http"),
    (
        "likha_realtime.routing",
        "likha_realtime.urls",
        "likha_realtime.apps",
        "likha_realtime.server",
        "likha_realtime.checks",
    ),
)
# Outside the layers: the package's empty ``__init__``, its models (a permission holder) and its migrations. They
# must import nothing of either app, so no chain between layers can pass through them unseen.
UNLAYERED = ("likha_realtime", "likha_realtime.models", "likha_realtime.migrations")
ROOT = Path(__file__).resolve().parents[1]


def build(*packages: str) -> grimp.ImportGraph:
    # cache_dir=None: no .grimp_cache in the working tree, and never a stale graph.
    return grimp.build_graph(*packages, cache_dir=None)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return build(*APPS)


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def layer_of(module: str) -> int | None:
    matches = [(len(name), index) for index, names in enumerate(LAYERS) for name in names if in_package(module, name)]
    return max(matches)[1] if matches else None


def describe(graph: grimp.ImportGraph, chain: Iterable[str]) -> str:
    """``a -> b [line 12: from b import x] -> c [...]``: each hop with the line of its importer that makes it."""
    modules = list(chain)
    text = modules[0]
    for importer, imported in itertools.pairwise(modules):
        details = graph.get_import_details(importer=importer, imported=imported)
        where = "; ".join(f"line {d['line_number']}: {d['line_contents']}" for d in details)
        text += f" -> {imported} [{where}]" if where else f" -> {imported}"
    return text


def report(title: str, graph: grimp.ImportGraph, chains: Iterable[Iterable[str]]) -> str:
    lines = sorted({describe(graph, chain) for chain in chains})
    return f"{title} ({len(lines)}):\n  " + "\n  ".join(lines)


def modules_of(graph: grimp.ImportGraph, package: str) -> list[str]:
    return sorted(module for module in graph.modules if in_package(module, package))


# -- the graph is the one we think it is -----------------------------------------------------------------------


def test_grimp_sees_imports_inside_functions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "planted_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text(
        textwrap.dedent(
            """
            def later():
                from planted_pkg import high

                return high


            class Holder:
                def method(self):
                    import planted_pkg.other  # noqa: F401
            """
        )
    )
    (package / "high.py").write_text("from planted_pkg import low\n")
    (package / "other.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))

    planted = build("planted_pkg")

    assert planted.direct_import_exists(importer="planted_pkg.low", imported="planted_pkg.high")
    assert planted.direct_import_exists(importer="planted_pkg.low", imported="planted_pkg.other")
    assert planted.find_shortest_chain(importer="planted_pkg.low", imported="planted_pkg.high") == (
        "planted_pkg.low",
        "planted_pkg.high",
    )
    assert planted.chain_exists(importer="planted_pkg.high", imported="planted_pkg.low")  # the hidden cycle


def test_the_graph_holds_every_module_of_both_apps(graph: grimp.ImportGraph) -> None:
    for package in APPS:
        names = {
            path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
            for path in (ROOT / package).rglob("*.py")
        }
        expected = {name.removesuffix(".__init__") for name in names}
        assert expected <= set(graph.modules), (
            f"modules missing from the graph: {sorted(expected - set(graph.modules))}"
        )


# -- the rules ---------------------------------------------------------------------------------------------------


def test_no_import_cycles(graph: grimp.ImportGraph) -> None:
    cycles = set()
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                loop = (importer, *back[:-1])  # one cycle, reported once: rotated to start at its least module
                start = loop.index(min(loop))
                cycles.add((*loop[start:], *loop[:start], loop[start]))
    assert not cycles, report("import cycles", graph, cycles)


def test_realtime_auth_imports_nothing_from_likha_realtime(graph: grimp.ImportGraph) -> None:
    chains = graph.find_shortest_chains(importer="realtime_auth", imported="likha_realtime", as_packages=True)
    assert not chains, report("realtime_auth reaches likha_realtime", graph, chains)


def test_the_kernel_imports_nothing_of_either_app(graph: grimp.ImportGraph) -> None:
    imported = graph.find_upstream_modules(KERNEL)
    assert imported == set(), report(f"{KERNEL} imports", graph, [(KERNEL, module) for module in imported])


def test_the_query_language_imports_nothing_from_realtime_auth_directly(graph: grimp.ImportGraph) -> None:
    direct = [
        (importer, imported)
        for importer in modules_of(graph, "likha_realtime.query")
        for imported in graph.find_modules_directly_imported_by(importer)
        if in_package(imported, "realtime_auth")
    ]
    assert not direct, report("likha_realtime.query imports realtime_auth directly", graph, direct)


def test_the_query_language_reaches_realtime_auth_only_at_the_kernel_through_wire_errors(
    graph: grimp.ImportGraph,
) -> None:
    reached = graph.find_upstream_modules("likha_realtime.query", as_package=True)
    beyond_kernel = sorted(module for module in reached if in_package(module, "realtime_auth") and module != KERNEL)
    chains = [graph.find_shortest_chains(importer="likha_realtime.query", imported=m) for m in beyond_kernel]
    assert not beyond_kernel, report(
        "likha_realtime.query reaches realtime_auth beyond its kernel", graph, [c for found in chains for c in found]
    )

    without_wire_errors = copy.deepcopy(graph)
    without_wire_errors.remove_module("likha_realtime.wire.errors")
    other_routes = without_wire_errors.find_shortest_chains(
        importer="likha_realtime.query", imported="realtime_auth", as_packages=True
    )
    assert not other_routes, report(
        "likha_realtime.query reaches realtime_auth other than through likha_realtime.wire.errors",
        without_wire_errors,
        other_routes,
    )


def test_every_module_has_a_layer_or_imports_nothing_of_either_app(graph: grimp.ImportGraph) -> None:
    unlayered = [module for module in sorted(graph.modules) if layer_of(module) is None]
    unknown = [m for m in unlayered if m != UNLAYERED[0] and not any(in_package(m, name) for name in UNLAYERED[1:])]
    assert not unknown, f"modules without a layer (add them to LAYERS or UNLAYERED): {unknown}"
    imports = [
        (module, imported) for module in unlayered for imported in graph.find_modules_directly_imported_by(module)
    ]
    assert not imports, report("modules outside the layers that import the apps", graph, imports)


def test_layers_import_only_downward(graph: grimp.ImportGraph) -> None:
    # Direct imports suffice: a chain between layers runs through layered modules only (the test above), and a
    # chain that climbs contains a direct import that climbs; that import is the one to move.
    upward = [
        (importer, imported)
        for importer in sorted(graph.modules)
        for imported in sorted(graph.find_modules_directly_imported_by(importer))
        if None not in (layer_of(importer), layer_of(imported)) and layer_of(imported) > layer_of(importer)
    ]
    assert not upward, report("imports from a lower layer up to a higher one", graph, upward)
