"""Branch coverage per Python package, from ``coverage json`` (``make coverage``).

``coverage report`` lists files; this sums them per package (the directory a module is in:
``app.api``, ``app.commands``, ``domain``, …), with a total per top-level package and overall.
Percent is coverage.py's own: covered lines and branches over all lines and branches.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any


@dataclass
class Tally:
    statements: int = 0
    missed: int = 0
    branches: int = 0
    missed_branches: int = 0

    def add(self, summary: dict[str, Any]) -> None:
        self.statements += summary["num_statements"]
        self.missed += summary["missing_lines"]
        self.branches += summary.get("num_branches", 0)
        self.missed_branches += summary.get("missing_branches", 0)

    @property
    def percent(self) -> float:
        total = self.statements + self.branches
        covered = total - self.missed - self.missed_branches
        return 100.0 * covered / total if total else 100.0


def package_of(path: str) -> str:
    return ".".join(PurePath(path).parent.parts) or "."


def by_package(report: dict[str, Any]) -> dict[str, Tally]:
    """{package: Tally} for every package and, as ``<top> (all)``, every top-level package."""
    tallies: dict[str, Tally] = defaultdict(Tally)
    subpackages: dict[str, set[str]] = defaultdict(set)
    for path, data in report["files"].items():
        package = package_of(path)
        top = package.split(".")[0]
        tallies[package].add(data["summary"])
        tallies[f"{top} (all)"].add(data["summary"])
        subpackages[top].add(package)
    for top, packages in subpackages.items():
        if len(packages) == 1:  # the total would repeat the package's own line
            del tallies[f"{top} (all)"]
    return dict(sorted(tallies.items()))


def _cells(t: Tally) -> tuple[str, ...]:
    return (str(t.statements), str(t.missed), str(t.branches), str(t.missed_branches), f"{t.percent:.1f}%")


def render(report: dict[str, Any]) -> str:
    rows: list[tuple[str, ...]] = [("package", "stmts", "miss", "branch", "brmiss", "cover")]
    rows += [(package, *_cells(tally)) for package, tally in by_package(report).items()]
    total = Tally()
    total.add(report["totals"])
    rows.append(("TOTAL", *_cells(total)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "coverage.json"
    with open(path, encoding="utf-8") as file:
        print(render(json.load(file)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
