"""Summarise a py-spy "raw" profile (collapsed stacks, as BENCH_PYSPY writes them).

    .venv/bin/python -m bench.profile_summary PROFILE.txt [--under FUNC] [--top N]

Prints where the samples went: by category (waiting for PostgreSQL, SQLAlchemy statement
building / execution, event decoding, ...), by the tally function that was running (the
innermost frame in app/, domain/ or projections/), and the hottest leaf frames.
``--under`` keeps only the stacks that pass through a frame whose name contains FUNC.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

CATEGORIES = [  # first match on any frame, innermost first
    (
        "PostgreSQL round trips (psycopg waiting on the socket)",
        (
            "psycopg/waiting.py",
            "wait_c",
            "wait_epoll",
            "wait_select",
            "Connection.wait psycopg",
            "_send_query_prepared",
            "psycopg/generators.py",
        ),
    ),
    (
        "event decoding (mapper/transcoder)",
        (
            "eventsourcing/persistence.py",
            "eventsourcing/domain.py",
            "json/decoder.py",
            "json/__init__.py:loads",
        ),
    ),
    ("SQLAlchemy compile / statement building", ("sqlalchemy/sql/",)),
    (
        "SQLAlchemy execute / result handling",
        ("sqlalchemy/engine/", "sqlalchemy/dialects/", "sqlalchemy/pool/"),
    ),
    ("psycopg (client side)", ("psycopg/",)),
    ("hashing / JSON encoding", ("hashlib", "json/encoder.py", "json/__init__.py")),
]


def parse(line: str) -> tuple[list[tuple[str, str]], int]:
    stack, _, count = line.rstrip("\n").rpartition(" ")
    frames = []
    for raw in stack.split(";"):
        m = _FRAME.match(raw)
        frames.append(
            (m.group("name"), m.group("file") + (":" + m.group("line") if m.group("line") else ""))
            if m
            else (raw, "")
        )
    return frames, int(count)


def category(frames: list[tuple[str, str]]) -> str:
    for name, where in reversed(frames):
        text = f"{name} {where}"
        for label, needles in CATEGORIES:
            if any(n in text for n in needles):
                return label
    return "other Python"


def tally_frame(frames: list[tuple[str, str]]) -> str:
    for name, where in reversed(frames):
        path = where.split(":")[0]
        if path.startswith(("app/", "domain/", "projections/")):
            return f"{name} ({where})"
    return "(outside tally)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("profile")
    parser.add_argument("--under", default=None)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    total = 0
    by_category: Counter = Counter()
    by_tally: Counter = Counter()
    by_leaf: Counter = Counter()
    with open(args.profile) as fh:
        for line in fh:
            if not line.strip():
                continue
            frames, count = parse(line)
            if args.under and not any(args.under in name for name, _ in frames):
                continue
            total += count
            by_category[category(frames)] += count
            by_tally[tally_frame(frames)] += count
            name, where = frames[-1]
            by_leaf[f"{name} ({where})"] += count
    if not total:
        print("no samples")
        return
    print(f"{total} samples" + (f" under {args.under}" if args.under else ""))
    for title, counter in (
        ("by category", by_category),
        ("by innermost tally frame", by_tally),
        ("by leaf frame", by_leaf),
    ):
        print(f"\n{title}:")
        for key, count in counter.most_common(args.top):
            print(f"  {count / total:6.1%}  {key}")


if __name__ == "__main__":
    main()
