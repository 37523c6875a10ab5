"""Dependency direction, checked by walking every import statement with ast."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
STDLIB = frozenset(sys.stdlib_module_names)
DOMAIN_FORBIDDEN = (
    "flask",
    "sqlalchemy",
    "psycopg",
    "psycopg_pool",
    "redis",
    "rq",
    "stripe",
    "marshmallow",
    "app",
    "projections",
    "workers",
)
STRIPE_ADAPTER = "app/adapters/providers/stripe_gateway.py"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """Absolute dotted names imported anywhere in the source (also inside functions and TYPE_CHECKING)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                target = ".".join(p for p in [*base_parts, node.module or ""] if p)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def imports_by_file(*packages: str) -> dict[str, set[str]]:
    result: dict[str, set[str]] = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if ".venv" in path.parts or "__pycache__" in path.parts:
                continue
            rel = path.relative_to(ROOT).as_posix()
            result[rel] = imports_of(
                path.read_text(encoding="utf-8"), module_name(path), is_package=path.name == "__init__.py"
            )
    return result


def matches(name: str, forbidden: str) -> bool:
    return name == forbidden or name.startswith(forbidden + ".")


def violations(files: dict[str, set[str]], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found = {
        rel: sorted(name for name in names if any(matches(name, f) for f in forbidden))
        for rel, names in files.items()
    }
    return {rel: names for rel, names in found.items() if names}


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

    def test_the_walker_finds_the_packages_it_checks(self) -> None:
        files = imports_by_file("domain", "app", "projections", "workers")
        assert {"domain/money.py", "domain/services.py", "app/commands/checkout.py", STRIPE_ADAPTER} <= set(
            files
        )
        assert "stripe" in files[STRIPE_ADAPTER]
        assert "eventsourcing.domain" in files["domain/payment.py"]


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
        files = imports_by_file("domain", "app", "projections", "workers")
        importers = sorted(violations(files, ("stripe",)))
        assert importers == [STRIPE_ADAPTER, "app/adapters/providers/stripe_webhooks.py"]

    def test_only_the_queue_adapter_and_workers_import_rq(self) -> None:
        files = imports_by_file("domain", "app", "projections", "workers")
        importers = sorted(rel for rel in violations(files, ("rq",)) if not rel.startswith("workers/"))
        assert importers == ["app/adapters/queue.py"]
