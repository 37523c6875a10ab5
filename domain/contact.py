"""Contacts (who is told, at which address) and platform alerts: both are events like the rest."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.ids import alert_id, contact_id

CUSTOMER = "customer"
SELLER = "seller"
PLATFORM = "platform"
ROLES = (CUSTOMER, SELLER)


class Contact(Aggregate):
    """A customer's or seller's name and e-mail address; every change stays in the history."""

    @staticmethod
    def create_id(role: str, subject_id: str, **_: Any) -> UUID:
        return contact_id(role, subject_id)

    @event("Registered")
    def __init__(
        self, role: str, subject_id: str, email: str | None, name: str | None, cause: dict[str, Any]
    ) -> None:
        self.role = role
        self.subject_id = subject_id
        self.email = email
        self.name = name

    def change(self, email: str | None, name: str | None, cause: dict[str, Any]) -> bool:
        """Set the address and name; returns whether anything changed."""
        if (email, name) == (self.email, self.name):
            return False
        self._changed(self.role, self.subject_id, email, name, cause)
        return True

    @event("Changed")
    def _changed(
        self, role: str, subject_id: str, email: str | None, name: str | None, cause: dict[str, Any]
    ) -> None:
        self.email = email
        self.name = name


class Alert(Aggregate):
    """Something the platform's operators must hear about (sent to ``ADMIN_EMAIL``)."""

    @staticmethod
    def create_id(kind: str, key: str, **_: Any) -> UUID:
        return alert_id(kind, key)

    @event("Raised")
    def __init__(self, kind: str, key: str, data: dict[str, Any]) -> None:
        self.kind = kind
        self.key = key
        self.data = data
