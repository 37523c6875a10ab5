"""The per-package coverage summary that `make coverage` prints."""

from __future__ import annotations

import pytest

from tests.coverage_by_package import by_package, render

pytestmark = pytest.mark.unit


def summary(statements: int, missing: int, branches: int, missing_branches: int) -> dict[str, int]:
    return {
        "num_statements": statements,
        "missing_lines": missing,
        "num_branches": branches,
        "missing_branches": missing_branches,
    }


REPORT = {
    "files": {
        "app/api/orders.py": {"summary": summary(10, 5, 4, 3)},
        "app/api/audit.py": {"summary": summary(6, 0, 2, 0)},
        "app/errors.py": {"summary": summary(4, 1, 0, 0)},
        "domain/money.py": {"summary": summary(20, 0, 0, 0)},
    },
    "totals": summary(40, 6, 6, 3),
}


def test_files_add_up_per_package_with_a_total_per_top_level_package() -> None:
    rows = by_package(REPORT)
    assert list(rows) == ["app", "app (all)", "app.api", "domain"]  # domain has one package: no total
    api = rows["app.api"]
    assert (api.statements, api.missed, api.branches, api.missed_branches) == (16, 5, 6, 3)
    assert api.percent == pytest.approx(100 * (22 - 8) / 22)
    assert rows["app (all)"].statements == 20


def test_the_table_ends_with_coverage_pys_own_total() -> None:
    lines = render(REPORT).splitlines()
    assert lines[0].split() == ["package", "stmts", "miss", "branch", "brmiss", "cover"]
    assert lines[-1].split() == ["TOTAL", "40", "6", "6", "3", "80.4%"]
    assert "app.api" in render(REPORT) and "63.6%" in render(REPORT)


def test_an_empty_package_counts_as_covered() -> None:
    assert (
        by_package({"files": {"workers/__init__.py": {"summary": summary(0, 0, 0, 0)}}})["workers"].percent
        == 100.0
    )
