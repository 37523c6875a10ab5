"""The shared-batch catch-up (one read of each batch for every read model, one transaction with a
savepoint per projection): each event still applied exactly once under racing workers, and a
projection that fails neither stops the others nor leaves half a batch behind."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from projections.orders import OrdersProjection
from projections.runner import PROJECTIONS, CatchUpFailed, catch_up_many
from projections.tables import orders_view
from tests.integration.read_side_helpers import dump_read_models, head, python_child, rebuild_everything
from tests.integration.test_read_side_exactly_once import _assert_gap_free, _history, _positions

pytestmark = pytest.mark.integration

# Two processes catch every read model up together, in batches of 2, released at once.
RACER_MANY = r"""
import json, os, time
from app.bootstrap import Container
from app.config import Settings
from projections.runner import PROJECTIONS, catch_up_many

container = Container(Settings.from_env())
container.engine, container.marketplace
go = os.environ["GO"]
open(os.environ["READY"], "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
applied = catch_up_many([cls() for cls in PROJECTIONS.values()], container.marketplace, container.engine, 2)
print(json.dumps(applied))
"""


class BrokenOrders(OrdersProjection):
    """The orders read model, failing from its second batch on, after it has written to its table."""

    def __init__(self) -> None:
        self.batches = 0

    def prepare(self, events: list[Any], writer: Any) -> None:
        self.batches += 1
        if self.batches >= 2:
            writer.execute(delete(orders_view))  # sent to the database, then the batch fails
            raise RuntimeError("broken read model")
        super().prepare(events, writer)


def _expected(container, name: str) -> int:
    topics = PROJECTIONS[name]().topics
    return len(
        container.marketplace.recorder.select_notifications(
            start=1, limit=100_000, stop=head(container), topics=topics
        )
    )


def test_two_processes_catching_everything_up_together_apply_each_event_once(
    app, client, container, admin, make_key, settings, tmp_path
):
    import json

    _history(client, admin, make_key)
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{n}" for n in range(2)]
    racers = [python_child(settings, RACER_MANY, GO=str(go), READY=str(r)) for r in ready]
    try:
        deadline = time.monotonic() + 30
        while not all(r.exists() for r in ready):
            for racer in racers:
                assert racer.poll() is None, racer.communicate()[1]
            assert time.monotonic() < deadline, "racers never got ready"
            time.sleep(0.01)
        go.touch()
        outputs = []
        for racer in racers:
            out, err = racer.communicate(timeout=120)
            assert racer.returncode == 0, err
            assert "IntegrityError" not in err and "Traceback" not in err, err
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait(10)
    # Between them the racers applied every event of every read model once.
    for name in PROJECTIONS:
        assert outputs[0][name] + outputs[1][name] == _expected(container, name), (name, outputs)
    assert set(_positions(container.engine).values()) == {head(container)}
    raced = dump_read_models(container.engine)
    _assert_gap_free(container.engine)
    rebuild_everything(container)
    assert dump_read_models(container.engine) == raced


def test_a_failing_projection_neither_stops_the_others_nor_keeps_half_a_batch(
    app, client, container, admin, make_key
):
    _history(client, admin, make_key)
    log_head = head(container)
    projections = [BrokenOrders() if name == "orders" else cls() for name, cls in PROJECTIONS.items()]
    with pytest.raises(CatchUpFailed) as failed:
        catch_up_many(projections, container.marketplace, container.engine, batch_size=3)
    assert set(failed.value.failures) == {"orders"}
    assert isinstance(failed.value.failures["orders"], RuntimeError)

    # Every other read model reached the head; orders kept its first batch, and only that.
    positions = _positions(container.engine)
    assert {name: p for name, p in positions.items() if name != "orders"} == {
        name: log_head for name in PROJECTIONS if name != "orders"
    }
    assert 0 < positions["orders"] < log_head
    placed = [
        n
        for n in container.marketplace.recorder.select_notifications(
            start=1, limit=100_000, stop=positions["orders"], topics=OrdersProjection().topics
        )
        if n.topic.endswith("Order.Placed")
    ]
    with container.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(orders_view)).scalar_one() == len(placed) > 0
    assert failed.value.applied["orders"] > 0
    assert all(
        failed.value.applied[name] == _expected(container, name) for name in PROJECTIONS if name != "orders"
    )

    # Repaired, the next catch-up applies the rest of orders and nothing else again.
    applied = catch_up_many(
        [cls() for cls in PROJECTIONS.values()], container.marketplace, container.engine, 3
    )
    assert applied["orders"] + failed.value.applied["orders"] == _expected(container, "orders")
    assert {name: n for name, n in applied.items() if name != "orders"} == dict.fromkeys(
        (name for name in PROJECTIONS if name != "orders"), 0
    )
    caught_up = dump_read_models(container.engine)
    rebuild_everything(container)
    assert dump_read_models(container.engine) == caught_up
