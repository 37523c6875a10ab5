"""Inventory: reserve a session's stock, and the sweep that sells or releases reservations.

Reservations are events on the stock records (the event store), with the moment their session
expires, never only in Redis: a Redis restart loses open sessions, not what they reserved, and the
sweep (every minute, from the ``stock`` read model) still sells each reservation whose session
placed an order and releases each one whose session expired without, so stock neither leaks nor
oversells.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from app.commands.deps import Deps
from domain.cause import Cause
from domain.ids import order_id_for_session

log = logging.getLogger(__name__)


def reserve_for_session(
    deps: Deps, session_id: str, items: list[dict[str, Any]], expires_at: datetime
) -> list[list[str]]:
    """Reserve the cart's tracked SKUs for the session's lifetime (InsufficientStockError: 409);
    returns the (seller, SKU)s it reserved."""
    cause = Cause.system(session_id, "checkout session opened").to_dict()
    tracked = deps.marketplace.reserve_stock(session_id, items, expires_at, cause)
    return [[item.seller_id, item.sku] for item in tracked]


def sell_reservation(deps: Deps, session: dict[str, Any], order_id: str) -> None:
    """The session's order is placed: its reservation leaves the shelf now. Never fails the paid
    checkout: whatever goes wrong here, the sweep sells it within a minute."""
    if "reserved" in session:  # what the session reserved when it opened
        keys = [(seller_id, sku) for seller_id, sku in session["reserved"]]
    else:  # a session opened by an earlier release
        keys = [(s["seller_id"], line["sku"]) for s in session["sellers"] for line in s["items"]]
    if not keys:
        return
    cause = Cause.system(session["id"], f"order {order_id} placed").to_dict()
    try:
        deps.marketplace.finish_reservation(session["id"], keys, order_id, cause)
    except Exception:
        log.exception("stock reserved by session %s not sold yet; the sweep will", session["id"])


def sweep_reservations(deps: Deps, now: datetime | None = None) -> dict[str, int]:
    """Sell the reservations of sessions that placed their order; release those of sessions that
    expired without one. Idempotent: a reservation ends once."""
    moment = now or datetime.now(UTC)
    marketplace = deps.marketplace
    deps.read_models.catch_up("stock")
    sold = released = 0
    for session_id, (keys, expires_at) in deps.read_models.open_reservations().items():
        if marketplace.order_exists_for_session(session_id):
            order_id = str(order_id_for_session(session_id))
            cause = Cause.system(session_id, f"order {order_id} placed").to_dict()
            sold += marketplace.finish_reservation(session_id, keys, order_id, cause)
        elif expires_at <= moment:
            cause = Cause.system(session_id, "checkout session expired").to_dict()
            released += marketplace.finish_reservation(session_id, keys, None, cause)
    return {"sold": sold, "released": released}
