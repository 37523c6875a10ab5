"""Contacts and platform alerts."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import IntegrityError

from domain.contact import Alert, Contact
from domain.ids import contact_id
from domain.marketplace.base import MarketplaceBase


class ContactTransactions(MarketplaceBase):
    """Who is told what happened, and the alerts the platform raises."""

    def get_contact(self, role: str, subject_id: str) -> Contact | None:
        return self._find(contact_id(role, subject_id), Contact)

    def set_contact(
        self,
        role: str,
        subject_id: str,
        email: str | None,
        name: str | None,
        cause: dict[str, Any],
        keep_name: bool = False,
    ) -> tuple[Contact, bool]:
        """Record a contact's address and name; returns (contact, changed). ``keep_name``: a
        checkout gives only the e-mail address, so the name stays as it was."""

        def command(attempt: int) -> tuple[Contact, bool]:
            contact = self.get_contact(role, subject_id)
            if contact is None:
                contact = Contact(role=role, subject_id=subject_id, email=email, name=name, cause=cause)
                self.save(contact)
                return contact, True
            changed = contact.change(email, contact.name if keep_name else name, cause)
            if changed:
                self.save(contact)
            return contact, changed

        return self._with_retry(command)

    def raise_alert(self, kind: str, key: str, data: dict[str, Any]) -> bool:
        """Raise the alert ``kind`` about ``key`` once; False when it was raised before."""
        try:
            self.save(Alert(kind=kind, key=key, data=data))
        except IntegrityError:
            return False
        return True
