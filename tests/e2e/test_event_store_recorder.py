"""tally's event recorders: an order's payment reference saved in the order's own transaction,
and no NOTIFY on PostgreSQL (nothing listens)."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.e2e.helpers import place_order


@pytest.mark.parametrize("backend", ["sqlite", "pg"], indirect=True)
def test_the_order_s_save_keeps_its_payment_reference(client, container, make_key) -> None:
    assert container.marketplace.saves_payment_references
    calls = []
    remember = container.records.remember_payment_reference
    container.records.remember_payment_reference = lambda *args: calls.append(args) or remember(*args)
    placed = place_order(client, make_key("customer", "c-1"))
    payment = container.marketplace.get_payment(placed["payment"]["id"])
    assert payment.provider_reference
    assert container.records.payment_id_for_reference(payment.provider_reference) == str(payment.id)
    assert calls == []  # no separate write: it went with Payment.Succeeded and Order.Placed


def test_saves_notify_nobody(container, settings) -> None:
    """A store of its own (its table, so its channel, named for this test): a save sends nothing."""
    import uuid

    from domain.services import Marketplace

    class Probe(Marketplace):
        name = f"probe{uuid.uuid4().hex[:8]}"

    container.engine  # creates the schema
    probe = Probe(env=settings.database.eventsourcing_env())
    db = settings.database
    try:
        with psycopg.connect(
            host=db.host, port=db.port, user=db.user, dbname=db.dbname, autocommit=True
        ) as listener:
            listener.execute(f'LISTEN "{probe.recorder.channel_name}"')
            probe.set_stock("s-1", "mug", 5, {"actor_id": "t", "actor_role": "admin", "request_id": "t"})
            assert probe.get_stock("s-1", "mug") is not None
            assert list(listener.notifies(timeout=0.5, stop_after=1)) == []
    finally:
        probe.close()


@pytest.mark.parametrize("backend", ["sqlite", "pg"], indirect=True)
def test_a_conflicting_save_writes_nothing_not_even_its_payment_reference(container) -> None:
    """One statement on PostgreSQL (tally_insert_events): its events and references commit together
    or not at all, and a version conflict is the library's IntegrityError, as the retries expect."""
    from eventsourcing.persistence import IntegrityError, StoredEvent

    recorder = container.marketplace.recorder
    container.engine  # the app's tables, payment_references among them
    stream = uuid.uuid4()

    def stored(version: int) -> StoredEvent:
        return StoredEvent(originator_id=stream, originator_version=version, topic="t", state=b"{}")

    first = recorder.insert_events([stored(1)], payment_references=[("pi_first", "p-1")])
    assert container.records.payment_id_for_reference("pi_first") == "p-1"
    with pytest.raises(IntegrityError):
        recorder.insert_events([stored(2), stored(1)], payment_references=[("pi_second", "p-2")])
    assert container.records.payment_id_for_reference("pi_second") is None
    assert [e.originator_version for e in recorder.select_events(stream)] == [1]
    later = recorder.insert_events([stored(2), stored(3)])
    if first is not None and later is not None:  # PostgreSQL: notification ids, in insert order
        assert list(later) == sorted(later) and later[0] > first[0]
