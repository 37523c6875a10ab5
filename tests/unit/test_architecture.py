"""Dependency direction, checked by walking every import statement with ast.

Each rule is a small function over {file: {imported name: line}} or over the module graph, so a
self-test can feed it a synthetic tree and see it fail; the tests on the real tree say which
file imports what, at which line.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterable, Mapping
from fnmatch import fnmatch
from itertools import pairwise
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
STDLIB = frozenset(sys.stdlib_module_names)
PACKAGES = ("domain", "app", "projections", "workers")
TOP_LEVEL_MODULES = ("wsgi.py",)
DOMAIN_FORBIDDEN = (
    "flask",
    "sqlalchemy",
    "psycopg",
    "psycopg_pool",
    "redis",
    "rq",
    "stripe",
    "razorpay",
    "marshmallow",
    "app",
    "projections",
    "workers",
)
STRIPE_ADAPTER = "app/adapters/providers/stripe_gateway.py"
RAZORPAY_HOMES = (
    "app/adapters/providers/razorpay_api.py",
    "app/adapters/providers/razorpay_money.py",
    "app/adapters/providers/razorpay_gateway.py",
)

# The web framework: Flask itself, flask-smorest and werkzeug (its requests and HTTP errors).
WEB = ("flask", "flask_smorest", "werkzeug")
# Delivery modules, the only ones that may speak HTTP (globs over paths from the repository root).
DELIVERY = (
    "app/__init__.py",
    "app/api/*",
    "app/console_web/*",
    "app/cli.py",
    "app/console.py",
    "app/errors.py",
    "app/auth.py",
    "app/idempotency.py",
)
# The API's views and the console's pages read through queries and adapters, never SQL or tables.
API_VIEWS = ("app/api/*", "app/console_web/*")
STORAGE = ("sqlalchemy", "projections.tables", "app.adapters.tables")
RQ_HOMES = ("app/adapters/queue.py", "workers/*")
STRIPE_HOMES = ("app/adapters/payments.py", "app/adapters/providers/*")
# What command handlers reach only through ports: the web, SQL, Redis, the queue, the provider.
INFRASTRUCTURE = (*WEB, "sqlalchemy", "redis", "rq", "stripe", "razorpay")

Imports = dict[str, int]  # imported dotted name -> first line importing it


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _from_target(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    base_parts = package.split(".")
    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
    return ".".join(p for p in [*base_parts, node.module or ""] if p)


def import_lines(source: str, module: str, is_package: bool = False) -> Imports:
    """Absolute dotted names imported anywhere in the source (also inside functions and
    TYPE_CHECKING), each with the first line importing it; ``from a import b`` gives ``a`` and
    ``a.b`` (b may be a module or an attribute)."""
    package = module if is_package else module.rpartition(".")[0]
    found: Imports = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.setdefault(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            target = _from_target(node, package)
            found.setdefault(target, node.lineno)
            for alias in node.names:
                if alias.name != "*":
                    found.setdefault(f"{target}.{alias.name}", node.lineno)
    return dict(sorted(found.items(), key=lambda item: item[1]))


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """The names of :func:`import_lines`."""
    return set(import_lines(source, module, is_package))


def source_files(*packages: str, root: Path = ROOT, top_level: Iterable[str] = ()) -> list[Path]:
    paths = [
        path
        for package in packages
        for path in sorted((root / package).rglob("*.py"))
        if ".venv" not in path.parts and "__pycache__" not in path.parts
    ]
    return paths + [root / name for name in top_level if (root / name).exists()]


def import_lines_by_file(
    *packages: str, root: Path = ROOT, top_level: Iterable[str] = ()
) -> dict[str, Imports]:
    return {
        path.relative_to(root).as_posix(): import_lines(
            path.read_text(encoding="utf-8"), module_name(path, root), is_package=path.name == "__init__.py"
        )
        for path in source_files(*packages, root=root, top_level=top_level)
    }


def imports_by_file(*packages: str) -> dict[str, set[str]]:
    return {rel: set(names) for rel, names in import_lines_by_file(*packages).items()}


def matches(name: str, forbidden: str) -> bool:
    return name == forbidden or name.startswith(forbidden + ".")


def violations(files: Mapping[str, Iterable[str]], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found = {
        rel: sorted(name for name in names if any(matches(name, f) for f in forbidden))
        for rel, names in files.items()
    }
    return {rel: names for rel, names in found.items() if names}


def confined(files: Mapping[str, Imports], forbidden: tuple[str, ...], allowed: tuple[str, ...]) -> list[str]:
    """``file:line imports name`` for every import of ``forbidden`` from a file outside ``allowed``
    (``from a import b`` is reported as ``a.b`` only)."""
    found = []
    for rel, names in sorted(files.items()):
        if any(fnmatch(rel, pattern) for pattern in allowed):
            continue
        hits = {name: line for name, line in names.items() if any(matches(name, f) for f in forbidden)}
        found += [
            f"{rel}:{line} imports {name}"
            for name, line in hits.items()
            if not any(other.startswith(name + ".") and hits[other] == line for other in hits)
        ]
    return found


# -- the module graph and its cycles -----------------------------------------------------------

Graph = dict[str, dict[str, int]]  # module -> {project module it imports: line}


def _resolve(name: str, modules: Mapping[str, object]) -> str | None:
    """The project module ``name`` loads: itself, or the module that defines the attribute."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def module_graph(*packages: str, root: Path = ROOT, top_level: Iterable[str] = ()) -> Graph:
    """Edges between the project's own modules from every import anywhere in a file (lazy,
    function-level and TYPE_CHECKING ones too). ``from app import api`` is an edge to
    ``app.api`` when that is a module, else to ``app``; parent packages that Python initialises
    on the way are not edges of their own."""
    paths = {
        module_name(path, root): path for path in source_files(*packages, root=root, top_level=top_level)
    }
    graph: Graph = {}
    for module, path in paths.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        edges = graph.setdefault(module, {})
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [_resolve(alias.name, paths) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _from_target(node, package)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in paths else _resolve(base, paths)
                    for alias in node.names
                ]
            else:
                continue
            for target in targets:
                if target is not None and target != module:
                    edges[target] = min(edges.get(target, node.lineno), node.lineno)
    return graph


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's components of more than one module, each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def cycle_through(graph: Graph, start: str, members: set[str]) -> list[str]:
    """The shortest cycle from ``start`` back to it within ``members``, as ``[start, …, start]``."""
    paths: dict[str, list[str]] = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph.get(node, {})):
            if target == start:
                return [*paths[node], start]
            if target in members and target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    raise AssertionError(f"no cycle through {start}")  # pragma: nocover


def import_cycles(graph: Graph) -> list[str]:
    """One shortest cycle per strongly connected component, as ``a:line -> b:line -> a`` (``a``
    imports ``b`` at that line of ``a``), with how many modules the component holds."""
    found = []
    for component in strongly_connected(graph):
        cycle = min((cycle_through(graph, start, set(component)) for start in component), key=len)
        text = " -> ".join([*(f"{a}:{graph[a][b]}" for a, b in pairwise(cycle)), cycle[-1]])
        found.append(
            text if len(component) == len(cycle) - 1 else f"{text} (one of {len(component)} modules)"
        )
    return found


def _explain(found: list[str]) -> str:
    return "\n  " + "\n  ".join(found)


class TestImportWalker:
    def test_the_walker_sees_nested_relative_and_type_checking_imports(self) -> None:
        source = (
            "from __future__ import annotations\n"
            "import os.path\n"
            "from typing import TYPE_CHECKING\n"
            "from . import money\n"
            "from ..app import handlers\n"
            "if TYPE_CHECKING:\n"
            "    from flask import Flask\n"
            "def f():\n"
            "    import stripe\n"
        )
        names = imports_of(source, "domain.services")
        assert {"os.path", "typing", "domain.money", "app.handlers", "flask", "stripe"} <= names
        assert imports_of("from .errors import X\n", "domain", is_package=True) >= {"domain.errors"}
        assert import_lines(source, "domain.services")["stripe"] == 9

    def test_the_walker_finds_the_packages_it_checks(self) -> None:
        files = imports_by_file("domain", "app", "projections", "workers")
        assert {"domain/money.py", "domain/services.py", "app/commands/checkout.py", STRIPE_ADAPTER} <= set(
            files
        )
        assert "stripe" in files[STRIPE_ADAPTER]
        assert "eventsourcing.domain" in files["domain/payment.py"]
        assert "wsgi.py" in import_lines_by_file(*PACKAGES, top_level=TOP_LEVEL_MODULES)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, source in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return root


class TestTheRulesCanFail:
    """Each checker, run on a small synthetic tree, reports what it must."""

    def test_confinement_names_the_file_the_line_and_the_import(self) -> None:
        files = {
            "app/api/orders.py": {"flask": 3, "sqlalchemy.orm": 7},
            "app/commands/refunds.py": {"flask.globals": 5, "workers.jobs": 9},
            "domain/order.py": {"eventsourcing.domain": 1},
        }
        assert confined(files, WEB, DELIVERY) == ["app/commands/refunds.py:5 imports flask.globals"]
        assert confined(files, STORAGE, ()) == ["app/api/orders.py:7 imports sqlalchemy.orm"]
        assert confined(files, ("workers",), ("workers/*",)) == [
            "app/commands/refunds.py:9 imports workers.jobs"
        ]
        assert confined(files, ("flask_smorest",), ()) == []  # a prefix of a name is not a match
        commands = {
            "app/commands/checkout.py": {"domain.ports": 3, "redis": 4},
            "app/commands/settlement.py": {"sqlalchemy": 2, "sqlalchemy.select": 2, "rq.Queue": 8},
            "app/adapters/queue.py": {"rq": 1},
        }
        assert confined(commands, INFRASTRUCTURE, ("app/adapters/*",)) == [
            "app/commands/checkout.py:4 imports redis",
            "app/commands/settlement.py:2 imports sqlalchemy.select",
            "app/commands/settlement.py:8 imports rq.Queue",
        ]

    def test_a_cycle_through_type_checking_imports_is_found(self, tmp_path: Path) -> None:
        root = _tree(
            tmp_path,
            {
                "pkg/__init__.py": "",
                "pkg/ports.py": (
                    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.adapter import A\n"
                ),
                "pkg/adapter.py": "from pkg import ports\n",
            },
        )
        assert import_cycles(module_graph("pkg", root=root)) == [
            "pkg.adapter:1 -> pkg.ports:3 -> pkg.adapter"
        ]

    def test_a_cycle_through_a_lazy_import_is_found_and_spelt_out(self, tmp_path: Path) -> None:
        root = _tree(
            tmp_path,
            {
                "pkg/__init__.py": "",
                "pkg/a.py": "from pkg.b import thing\n",
                "pkg/b.py": "thing = 1\ndef later():\n    from pkg import a\n",
                "pkg/c.py": "import pkg.a\nfrom . import b\n",
                "pkg/sub/__init__.py": "from ..c import nothing\n",
            },
        )
        graph = module_graph("pkg", root=root)
        assert graph["pkg.c"] == {"pkg.a": 1, "pkg.b": 2}
        assert graph["pkg.sub"] == {"pkg.c": 1}
        assert import_cycles(graph) == ["pkg.a:1 -> pkg.b:3 -> pkg.a"]

    def test_an_acyclic_graph_has_no_cycles_and_a_longer_cycle_is_found(self) -> None:
        assert import_cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {}}) == []
        graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {"d": 5}, "x": {"a": 6}}
        assert import_cycles(graph) == ["a:1 -> b:2 -> c:3 -> a"]
        graph["c"]["b"] = 7
        assert import_cycles(graph) == ["b:2 -> c:7 -> b (one of 3 modules)"]
        assert strongly_connected({"a": {"b": 1}, "b": {"a": 1}, "c": {"d": 1}, "d": {"c": 1}}) == [
            ["a", "b"],
            ["c", "d"],
        ]

    def test_a_top_level_module_joins_the_graph(self, tmp_path: Path) -> None:
        root = _tree(tmp_path, {"pkg/__init__.py": "def f():\n    import wsgi\n", "wsgi.py": "import pkg\n"})
        assert import_cycles(module_graph("pkg", root=root, top_level=["wsgi.py"])) == [
            "pkg:2 -> wsgi:1 -> pkg"
        ]


class TestDependencyDirection:
    def test_domain_imports_only_the_standard_library_eventsourcing_and_itself(self) -> None:
        files = imports_by_file("domain")
        outside = {
            rel: sorted(n for n in names if n.split(".")[0] not in STDLIB | {"eventsourcing", "domain"})
            for rel, names in files.items()
        }
        assert {rel: names for rel, names in outside.items() if names} == {}
        assert violations(files, DOMAIN_FORBIDDEN) == {}

    def test_projections_never_import_flask_the_api_redis_rq_or_stripe(self) -> None:
        files = imports_by_file("projections")
        assert violations(files, ("flask", "flask_smorest", "app.api", "redis", "rq", "stripe")) == {}

    def test_workers_never_import_flask_or_the_api(self) -> None:
        files = imports_by_file("workers")
        assert violations(files, ("flask", "flask_smorest", "app.api")) == {}

    def test_only_the_stripe_adapters_import_stripe(self) -> None:
        files = import_lines_by_file(*PACKAGES, top_level=TOP_LEVEL_MODULES)
        found = confined(files, ("stripe",), STRIPE_HOMES)
        assert found == [], "stripe outside its adapter:" + _explain(found)
        assert "stripe" in files[STRIPE_ADAPTER]

    def test_only_the_razorpay_adapter_imports_razorpay(self) -> None:
        files = import_lines_by_file(*PACKAGES, top_level=TOP_LEVEL_MODULES)
        found = confined(files, ("razorpay",), RAZORPAY_HOMES)
        assert found == [], "razorpay outside its adapter:" + _explain(found)
        assert "razorpay" in files["app/adapters/providers/razorpay_api.py"]

    def test_projections_never_import_razorpay(self) -> None:
        assert violations(imports_by_file("projections"), ("razorpay",)) == {}

    def test_only_the_queue_adapter_and_workers_import_rq(self) -> None:
        files = import_lines_by_file(*PACKAGES, top_level=TOP_LEVEL_MODULES)
        found = confined(files, ("rq",), RQ_HOMES)
        assert found == [], "rq outside the queue adapter and workers:" + _explain(found)
        assert "rq" in files["app/adapters/queue.py"]

    def test_only_delivery_modules_import_flask(self) -> None:
        files = import_lines_by_file(*PACKAGES, top_level=TOP_LEVEL_MODULES)
        found = confined(files, WEB, DELIVERY)
        assert found == [], "the web framework outside the delivery modules:" + _explain(found)

    def test_every_delivery_module_does_import_flask(self) -> None:
        """DELIVERY lists exactly the modules that speak HTTP: shrink it when one stops."""
        files = import_lines_by_file(*PACKAGES, top_level=TOP_LEVEL_MODULES)
        delivery = [rel for rel in files if any(fnmatch(rel, pattern) for pattern in DELIVERY)]
        assert "app/idempotency.py" in delivery
        assert [rel for rel in delivery if not violations({rel: files[rel]}, WEB)] == []

    def test_nothing_imports_workers(self) -> None:
        """Jobs are enqueued by dotted path; the worker commands are Flask CLI entry points."""
        files = import_lines_by_file(*PACKAGES, top_level=TOP_LEVEL_MODULES)
        found = confined(files, ("workers",), ("workers/*",))
        assert found == [], "workers imported from outside:" + _explain(found)

    def test_the_worker_commands_are_entry_points_into_workers_that_exist(self) -> None:
        pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
        targets = pyproject["project"]["entry-points"]["flask.commands"].values()
        assert targets
        for target in targets:
            module, _, name = target.partition(":")
            tree = ast.parse((ROOT / f"{module.replace('.', '/')}.py").read_text(encoding="utf-8"))
            defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
            assert module.startswith("workers.") and name in defined, target

    def test_commands_import_neither_flask_sqlalchemy_redis_rq_stripe_nor_razorpay(self) -> None:
        files = import_lines_by_file("app/commands")
        found = confined(files, INFRASTRUCTURE, ())
        assert found == [], "infrastructure in a command handler (put it behind a port):" + _explain(found)
        assert "app/commands/checkout.py" in files

    def test_api_views_import_neither_sqlalchemy_nor_tables(self) -> None:
        files = import_lines_by_file(*PACKAGES)
        views = {rel: names for rel, names in files.items() if any(fnmatch(rel, p) for p in API_VIEWS)}
        found = confined(views, STORAGE, ())
        assert found == [], (
            "storage in an API view (move the query to projections.queries or an adapter):"
            + (_explain(found))
        )
        assert "app/api/orders.py" in views

    def test_no_import_cycles_lazy_imports_included(self) -> None:
        cycles = import_cycles(module_graph(*PACKAGES, top_level=TOP_LEVEL_MODULES))
        assert cycles == [], "import cycles (module:line -> imported module):" + _explain(cycles)
