"""What a verification found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.audit import limits
from projections.audit import GENESIS


@dataclass
class Report:
    """What a verification found: breaches (any one fails it) and counts."""

    breaches: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    head: tuple[int, str] = (0, GENESIS)  # the audit log's position and hash the check covered
    # The head the last completed verification saw, which this one compared the chain with:
    # {"verification_id", "completed_at", "position", "hash"}; None before any verification.
    compared_with: dict[str, Any] | None = None

    def breach(self, message: str) -> None:
        if len(self.breaches) < limits.BREACH_LIMIT:
            self.breaches.append(message)

    @property
    def ok(self) -> bool:
        return not self.breaches


def unreplayable(report: Report, stream_id: Any, version: int, type_name: str, error: Exception) -> None:
    """Name an event that the money books or the read models could not take."""
    report.breach(
        f"event {stream_id} v{version} ({type_name}) cannot be replayed: {type(error).__name__}: {error}"
    )
