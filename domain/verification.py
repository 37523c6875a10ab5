"""A verification of the books (``audit verify``) asked for through the API or by the schedule.

Its events are facts in the audited log like any other: who asked, up to which position of
the hash-chained log it checked, and its verdict, so an auditor can later show which state of
history was verified when, and what was found.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate, event

from domain.ids import verification_id

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"


class Verification(Aggregate):
    """One run of the books' verification: queued, running, then done (with its verdict) or failed."""

    @staticmethod
    def create_id(cause: dict[str, Any], key: str | None = None) -> UUID:
        return verification_id(key) if key else uuid4()

    @event("Requested")
    def __init__(self, cause: dict[str, Any], key: str | None = None) -> None:
        """``key``: the one verification a natural key stands for (the daily one: "daily/<date>")."""
        self.key = key
        self.status = QUEUED
        self.head_position: int | None = None
        self.head_hash: str | None = None
        self.ok: bool | None = None
        self.breaches: list[str] = []
        self.checked: dict[str, int] = {}
        self.error: str | None = None

    @event("Started")
    def start(self) -> None:
        """A run begins (again, after a failure: the earlier error no longer stands)."""
        self.status = RUNNING
        self.error = None

    @event("Completed")
    def complete(
        self, head_position: int, head_hash: str, ok: bool, breaches: list[str], checked: dict[str, int]
    ) -> None:
        """The verdict on the log up to ``head_position`` (whose chained hash is ``head_hash``)."""
        self.status = DONE
        self.head_position, self.head_hash = head_position, head_hash
        self.ok, self.breaches, self.checked = ok, list(breaches), dict(checked)

    @event("Failed")
    def fail(self, error: str) -> None:
        """The run stopped before a verdict (it can be run again)."""
        self.status = FAILED
        self.error = error
