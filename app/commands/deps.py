"""What the commands depend on: the ports, the write model and a few settings (no Container)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from domain.payable import PayableRule
from domain.ports import (
    Auditor,
    CheckoutSessions,
    Jobs,
    Locks,
    Mailer,
    NotificationOutbox,
    PaymentGateway,
    ProviderRecords,
    ReadModels,
)
from domain.services import Marketplace


@dataclass(frozen=True)
class Policy:
    """The settings commands act on."""

    platform_fee_bps: int = 1000
    checkout_session_ttl_seconds: int = 1800
    # Refunds of money already paid out: reverse the seller's payout at the provider (when the
    # gateway can), else carry a negative adjustment to the seller's next settlement.
    reverse_payouts_on_refund: bool = False
    # When a seller's part becomes payable (SETTLE_AFTER, SETTLEMENT_HOLD_DAYS).
    payable: PayableRule = field(default_factory=PayableRule)


class Deps(Protocol):
    """The narrow set of ports a command may use; the Container and the test fakes both provide it."""

    @property
    def policy(self) -> Policy: ...

    @property
    def marketplace(self) -> Marketplace: ...

    @property
    def gateway(self) -> PaymentGateway: ...

    @property
    def sessions(self) -> CheckoutSessions: ...

    @property
    def jobs(self) -> Jobs: ...

    @property
    def locks(self) -> Locks: ...

    @property
    def records(self) -> ProviderRecords: ...

    @property
    def outbox(self) -> NotificationOutbox: ...

    @property
    def mailer(self) -> Mailer | None: ...

    @property
    def read_models(self) -> ReadModels: ...

    @property
    def auditor(self) -> Auditor: ...
