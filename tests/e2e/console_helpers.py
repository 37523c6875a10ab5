"""Shared by the console's client and browser tests: a marketplace with two customers and two
sellers (orders, a refund, a settlement), keys per role, and signing in through the form."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.auth import create_key
from tests.integration.read_side_helpers import item, order_for

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
TODAY = datetime.now(UTC).date()
PERIOD = ((TODAY - timedelta(days=30)).isoformat(), (TODAY + timedelta(days=1)).isoformat())


@dataclass
class World:
    """The data every console test looks at, and the raw keys (the console signs in with them)."""

    keys: dict[str, str] = field(default_factory=dict)  # name -> tk_… key
    key_ids: dict[str, str] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    settlement: dict[str, Any] = field(default_factory=dict)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def build_world(client: Any, container: Any) -> World:
    """c-1 buys from s-1 and s-2; c-2 buys from s-2 only (in EUR); s-1 is settled."""
    world = World()
    for name, role, subject in (
        ("admin", "admin", None),
        ("auditor", "auditor", None),
        ("c-1", "customer", "c-1"),
        ("c-2", "customer", "c-2"),
        ("s-1", "seller", "s-1"),
        ("s-2", "seller", "s-2"),
    ):
        key_id, key = create_key(container.engine, role, subject)
        world.keys[name], world.key_ids[name] = key, key_id
    world.orders["c-1"] = order_for(
        client, bearer(world.keys["c-1"]), "c-1", [item("s-1", 2500, "mug"), item("s-2", 1999, "tee")]
    )["order"]
    world.orders["c-2"] = order_for(
        client, bearer(world.keys["c-2"]), "c-2", [item("s-2", 4200, "lamp")], currency="EUR"
    )["order"]
    container.read_models.catch_up()
    settled = client.post(
        f"/api/sellers/s-1/settlements?period_start={PERIOD[0]}&period_end={PERIOD[1]}",
        headers=bearer(world.keys["admin"]),
    )
    assert settled.status_code in (200, 201), settled.get_data(as_text=True)
    world.settlement = settled.json["settlements"][0]
    container.read_models.catch_up()
    return world


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, "no csrf_token in the page"
    return found.group(1)


def sign_in(client: Any, key: str) -> Any:
    """Open the sign-in form and send the key with the form's token; the response to the POST."""
    form = client.get("/console/login")
    assert form.status_code == 200
    return client.post(
        "/console/login", data={"key": key, "csrf_token": csrf_of(form.get_data(as_text=True))}
    )
