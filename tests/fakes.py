"""Fakes of the ports (domain.ports) for the fast command tests: in memory, recording what they did."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from app.adapters.mail_templates import JinjaMailTemplates
from app.adapters.providers.mock import MockGateway
from app.commands.deps import Policy
from domain.errors import CheckoutSessionNotFoundError, ConcurrentChangeError
from domain.ports import (
    ChargeResult,
    MailMessage,
    MailNotSentError,
    PayoutResult,
    PendingNotification,
    ProviderEvent,
    ProviderRefund,
    ProviderUnavailableError,
    ReadModels,
)
from domain.services import Marketplace


class FakeGateway(MockGateway):
    """The mock provider's answers, plus a record of every call and faults on demand."""

    name = "fake"

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.unavailable: set[str] = set()  # call names that raise ProviderUnavailableError
        self.refused_payouts: str | None = None
        self.payout_answers: list[PayoutResult] = []  # what the next payouts answer, in turn
        self.listed_refunds: dict[str, list[ProviderRefund]] = {}
        # What the provider holds by our ids, for the look-ups after an unknown outcome.
        self.held_payments: dict[str, ChargeResult] = {}
        self.held_payouts: dict[str, PayoutResult] = {}
        self.held_reversals: dict[str, PayoutResult] = {}  # by reversal id
        self.lookups_fail = False
        # Whether an unavailable call is known to have done nothing (the adapter looked it up).
        self.surely_nothing_done = False
        self.next_charge: ChargeResult | None = None  # what the next charge answers instead

    def _called(self, what: str, kwargs: dict[str, Any]) -> None:
        self.calls.append((what, kwargs))
        if what in self.unavailable:
            raise ProviderUnavailableError(what, nothing_done=self.surely_nothing_done)

    def charge(self, **kwargs: Any) -> Any:
        self._called("charge", kwargs)
        answer, self.next_charge = self.next_charge, None
        return answer or super().charge(**kwargs)

    def refund(self, **kwargs: Any) -> Any:
        self._called("refund", kwargs)
        return super().refund(**kwargs)

    def payout(self, **kwargs: Any) -> PayoutResult:
        self._called("payout", kwargs)
        if self.refused_payouts:
            return PayoutResult(False, None, self.refused_payouts)
        if self.payout_answers:
            return self.payout_answers.pop(0)
        return super().payout(**kwargs)

    def reverse_payout(self, **kwargs: Any) -> PayoutResult:
        self._called("reverse_payout", kwargs)
        return super().reverse_payout(**kwargs)

    def refunds_of(self, provider_reference: str) -> list[ProviderRefund] | None:
        return self.listed_refunds.get(provider_reference)

    def _looked_up(self, what: str, key: str) -> None:
        self.calls.append((what, {"key": key}))
        if self.lookups_fail:
            raise ProviderUnavailableError(what)

    def find_payment(self, payment_id: str, since: datetime) -> ChargeResult | None:
        self._looked_up("find_payment", payment_id)
        return self.held_payments.get(payment_id)

    def find_payout(
        self, settlement_id: str, transfer_group: str, allocation_id: str | None
    ) -> PayoutResult | None:
        """``held_payouts`` is keyed by ``<settlement id>:<allocation id>`` (a line's transfer) or by
        the settlement id alone (a settlement paid by one transfer before lines existed)."""
        key = settlement_id if allocation_id is None else f"{settlement_id}:{allocation_id}"
        self._looked_up("find_payout", key)
        return self.held_payouts.get(key)

    def find_payout_reversal(self, payout_reference: str, reversal_id: str) -> PayoutResult | None:
        self._looked_up("find_payout_reversal", reversal_id)
        return self.held_reversals.get(reversal_id)

    def calls_to(self, what: str) -> list[dict[str, Any]]:
        return [kwargs for name, kwargs in self.calls if name == what]


class InMemoryCheckoutSessions:
    """Sessions in a dict; a lock is a set of held ids (taken: ConcurrentChangeError, as Redis's)."""

    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}
        self.held: set[str] = set()

    def create(self, session: dict[str, Any], ttl_seconds: int) -> None:
        self.sessions[session["id"]] = copy.deepcopy(session)

    def get(self, session_id: str) -> dict[str, Any]:
        try:
            return copy.deepcopy(self.sessions[session_id])
        except KeyError:
            raise CheckoutSessionNotFoundError(f"no checkout session {session_id}") from None

    def update(self, session_id: str, **changes: Any) -> dict[str, Any]:
        session = self.get(session_id)
        session.update(changes)
        self.save(session)
        return session

    def save(self, session: dict[str, Any]) -> None:
        self.sessions[session["id"]] = copy.deepcopy(session)

    @contextmanager
    def lock(self, session_id: str, timeout_seconds: int = 120) -> Iterator[None]:
        if session_id in self.held:
            raise ConcurrentChangeError("this checkout session is being confirmed by another request")
        self.held.add(session_id)
        try:
            yield
        finally:
            self.held.discard(session_id)

    def forget_expired(self, now: float | None = None) -> int:
        return 0


@dataclass
class FakeJobs:
    """Records what would have been enqueued."""

    requested: list[tuple[str, str | None]] = field(default_factory=list)

    def projections_changed(self) -> None:
        self.requested.append(("projections", None))

    def settlement_run_requested(self, run_id: str) -> None:
        self.requested.append(("settlement_run", run_id))

    def settlement_chunk_requested(self, run_id: str, index: int) -> None:
        self.requested.append(("settlement_chunk", f"{run_id}:{index}"))

    def verification_requested(self, verification_id: str) -> None:
        self.requested.append(("verification", verification_id))

    def notifications_changed(self) -> None:
        self.requested.append(("notifications", None))

    def webhooks_changed(self) -> None:
        self.requested.append(("webhooks", None))


class FakeLocks:
    """Non-reentrant named locks that refuse at once when taken, and remember what was locked."""

    def __init__(self) -> None:
        self.held: set[str] = set()
        self.taken: list[str] = []
        self._mutex = threading.Lock()

    @contextmanager
    def _hold(self, name: str) -> Iterator[None]:
        with self._mutex:
            if name in self.held:
                raise ConcurrentChangeError(f"{name} is busy, retry later")
            self.held.add(name)
            self.taken.append(name)
        try:
            yield
        finally:
            self.held.discard(name)

    def order_refunds(self, order_id: str) -> AbstractContextManager[None]:
        return self._hold(f"refund:{order_id}")

    def seller_settlement(
        self, seller_id: str, timeout_seconds: int = 600, wait_seconds: float = 120
    ) -> AbstractContextManager[None]:
        return self._hold(f"settle:{seller_id}")


class InMemoryRecords:
    """ProviderRecords in dicts."""

    def __init__(self) -> None:
        self.references: dict[str, str] = {}
        self.events: dict[str, tuple[ProviderEvent, str, str | None]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.attempts: dict[str, int] = {}

    def remember_payment_reference(self, provider_reference: str, payment_id: str) -> None:
        self.references.setdefault(provider_reference, payment_id)

    def payment_id_for_reference(self, provider_reference: str) -> str | None:
        return self.references.get(provider_reference)

    def claim_event(self, event: ProviderEvent) -> bool:
        known = self.events.get(event.id)
        if known is not None and known[1] != "failed":
            return False
        self.events[event.id] = (event, "received", None)
        return True

    def finish_event(self, event_id: str, state: str, detail: str | None) -> None:
        self.events[event_id] = (self.events[event_id][0], state, detail)

    def remember_refund(
        self,
        provider_reference: str,
        refund_id: str,
        order_id: str,
        payment_id: str,
        amount: int,
        origin: str,
    ) -> None:
        self.refunds.setdefault(
            provider_reference,
            {
                "refund_id": refund_id,
                "order_id": order_id,
                "payment_id": payment_id,
                "amount": amount,
                "origin": origin,
            },
        )

    def refund_ids_for(self, provider_references: list[str]) -> dict[str, str]:
        return {ref: self.refunds[ref]["refund_id"] for ref in provider_references if ref in self.refunds}

    def order_for_refund(self, refund_id: str) -> str | None:
        found = [r["order_id"] for r in self.refunds.values() if r["refund_id"] == refund_id]
        return found[0] if found else None

    def count_attempt(self, name: str) -> int:
        self.attempts[name] = self.attempts.get(name, 0) + 1
        return self.attempts[name]

    def count_attempts(self, names: list[str]) -> dict[str, int]:
        return {name: self.count_attempt(name) for name in dict.fromkeys(names)}


class InMemoryOutbox:
    """NotificationOutbox in dicts: ``notifications`` are what the read model would hold."""

    def __init__(self) -> None:
        self.notifications: list[PendingNotification] = []
        self.deliveries: dict[str, dict[str, Any]] = {}

    def due(self, now: datetime, limit: int) -> list[PendingNotification]:
        due = []
        for n in self.notifications:
            d = self.deliveries.get(n.notification_id)
            if (
                d is None
                or (d["state"] == "pending" and d["next_attempt_at"] <= now)
                or (d["state"] == "sending" and d["claimed_until"] <= now)
            ):
                attempts = d["attempts"] if d else 0
                first = d["first_attempt_at"] if d else None
                due.append(replace(n, attempts=attempts, first_attempt_at=first))
        return due[:limit]

    def claim(self, notification: PendingNotification, now: datetime, claimed_until: datetime) -> bool:
        d = self.deliveries.get(notification.notification_id)
        if d is None:
            if notification.attempts:
                return False
            self.deliveries[notification.notification_id] = {
                "state": "sending",
                "attempts": 1,
                "first_attempt_at": now,
                "claimed_until": claimed_until,
                "sent_at": None,
            }
            return True
        if d["attempts"] != notification.attempts or d["state"] not in ("pending", "sending"):
            return False
        d.update(state="sending", attempts=d["attempts"] + 1, claimed_until=claimed_until)
        return True

    def mark_sent(self, notification_id: str, now: datetime) -> None:
        self.deliveries[notification_id].update(state="sent", sent_at=now)

    def mark_retry(self, notification_id: str, error: str, next_attempt_at: datetime) -> None:
        self.deliveries[notification_id].update(state="pending", next_attempt_at=next_attempt_at, error=error)

    def mark_failed(self, notification_id: str, error: str, now: datetime) -> None:
        self.deliveries[notification_id].update(state="failed", error=error)


@dataclass
class InMemoryMailer:
    """Keeps the messages; ``refuse`` makes every send fail as an unreachable server would."""

    sent: list[MailMessage] = field(default_factory=list)
    refuse: bool = False

    def send(self, message: MailMessage) -> None:
        if self.refuse:
            raise MailNotSentError("ConnectionRefusedError")
        self.sent.append(message)


@dataclass
class FakeAuditor:
    verdict: dict[str, Any] = field(
        default_factory=lambda: {
            "head_position": 0,
            "head_hash": "",
            "ok": True,
            "breaches": [],
            "checked": {},
        }
    )
    error: Exception | None = None

    def verify(self) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        return self.verdict


@dataclass
class FakeDeps:
    """Everything a command may use, as fakes (read models: the real ones on in-memory SQLite)."""

    marketplace: Marketplace
    read_models: ReadModels
    policy: Policy = field(default_factory=Policy)
    gateway: FakeGateway = field(default_factory=FakeGateway)
    sessions: InMemoryCheckoutSessions = field(default_factory=InMemoryCheckoutSessions)
    jobs: FakeJobs = field(default_factory=FakeJobs)
    locks: FakeLocks = field(default_factory=FakeLocks)
    records: InMemoryRecords = field(default_factory=InMemoryRecords)
    mailer: InMemoryMailer | None = field(default_factory=InMemoryMailer)
    auditor: FakeAuditor = field(default_factory=FakeAuditor)

    outbox: InMemoryOutbox = field(default_factory=InMemoryOutbox)
    templates: JinjaMailTemplates = field(default_factory=JinjaMailTemplates)
