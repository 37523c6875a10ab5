"""The ReadModels and Auditor ports over the SQL read side."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from app.audit import verify
from app.audit.fees import FeeRule
from domain.payable import PayableRule
from domain.services import Marketplace
from projections import queries
from projections.runner import PROJECTIONS, catch_up, catch_up_many
from projections.seller_queries import open_reservations


class SqlReadModels:
    """Catch-up and the settlement queries, on the read models' engine."""

    def __init__(self, marketplace: Marketplace, engine: Engine) -> None:
        self.marketplace = marketplace
        self.engine = engine

    def catch_up(self, *names: str) -> None:
        """Catch ``names`` (default: every read model) up together, each batch read once."""
        chosen = [PROJECTIONS[name]() for name in names or tuple(PROJECTIONS)]
        catch_up_many(chosen, self.marketplace, self.engine)

    def unsettled_for_seller(
        self,
        seller_id: str,
        before: datetime,
        payable: PayableRule | None = None,
        now: datetime | None = None,
    ) -> dict[str, dict[str, list[Any]]]:
        return queries.unsettled_for_seller(self.engine, seller_id, before, payable, now)

    def open_reservations(self) -> dict[str, tuple[list[tuple[str, str]], datetime]]:
        return open_reservations(self.engine)

    def seller_currencies(self, seller_id: str) -> list[str]:
        return queries.seller_currencies(self.engine, seller_id)

    def sellers_with_unsettled(self, before: datetime) -> list[str]:
        return queries.sellers_with_unsettled(self.engine, before)

    def payments_in_flight(self, before: datetime) -> list[str]:
        self.catch_up("audit_log")
        return queries.payments_in_flight(self.engine, before)

    def carried_adjustments(self) -> list[tuple[str, str]]:
        self.catch_up("payouts")
        return queries.carried_adjustments(self.engine)

    def settlement_runs_unfinished(self) -> list[str]:
        self.catch_up("audit_log")
        return queries.settlement_runs_unfinished(self.engine)

    def settlements_in_flight(self) -> list[str]:
        self.catch_up("settlements")
        return queries.settlements_in_flight(self.engine)


class SqlAuditor:
    """``audit verify`` over the event store and the read models, after the audit log caught up."""

    def __init__(
        self,
        marketplace: Marketplace,
        engine: Engine,
        payable: PayableRule | None = None,
        fees: FeeRule | None = None,
    ) -> None:
        self.marketplace = marketplace
        self.engine = engine
        self.payable = payable
        self.fees = fees

    def verify(self) -> dict[str, Any]:
        catch_up(PROJECTIONS["audit_log"](), self.marketplace, self.engine)
        report = verify(self.marketplace, self.engine, payable=self.payable, fees=self.fees)
        return {
            "head_position": report.head[0],
            "head_hash": report.head[1],
            "ok": report.ok,
            "breaches": report.breaches,
            "checked": report.checked,
        }
