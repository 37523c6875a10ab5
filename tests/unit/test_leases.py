"""The heartbeat renews every lease it holds until the beat says stop; locks renew and let go."""

from __future__ import annotations

import threading
import time

import fakeredis
import pytest

from app.adapters.heartbeat import Heartbeat
from app.adapters.locks import named_lock
from domain.errors import ConcurrentChangeError

pytestmark = pytest.mark.unit


def test_the_heartbeat_calls_each_beat_until_it_says_stop_and_survives_a_failing_one():
    beat = Heartbeat(interval=0.02)
    calls = {"kept": 0, "once": 0}
    done = threading.Event()

    def kept() -> bool:
        calls["kept"] += 1
        if calls["kept"] >= 5:
            done.set()
        return True

    def once() -> bool:
        calls["once"] += 1
        return False

    def failing() -> bool:
        raise ConnectionError("redis away")

    beat.add(failing)
    beat.add(once)
    handle = beat.add(kept)
    assert done.wait(2)
    beat.remove(handle)
    assert calls["once"] == 1


def test_a_lock_is_renewed_while_held_and_released_when_the_block_raises(monkeypatch):
    from app.adapters import locks

    monkeypatch.setattr(locks, "heartbeat", Heartbeat(interval=0.1))
    redis = fakeredis.FakeRedis()
    with pytest.raises(RuntimeError), named_lock(redis, "l", lease_seconds=0.5, wait_seconds=0):
        time.sleep(1.0)  # twice the lease: only renewal keeps it
        assert redis.exists("l")
        with pytest.raises(ConcurrentChangeError), named_lock(redis, "l", wait_seconds=0, busy="busy"):
            pass
        raise RuntimeError("the request failed")
    assert not redis.exists("l")


def test_a_lock_whose_owner_stopped_renewing_lapses_within_its_lease(monkeypatch):
    from app.adapters import locks

    monkeypatch.setattr(locks, "heartbeat", Heartbeat(interval=60))  # the owner "died": no renewal
    redis = fakeredis.FakeRedis()
    with named_lock(redis, "l", lease_seconds=0.3, wait_seconds=0):
        time.sleep(0.5)
        assert not redis.exists("l")
        with named_lock(redis, "l", wait_seconds=0):  # someone else may take it now
            pass


def test_a_lock_held_past_its_max_hold_is_no_longer_renewed(monkeypatch):
    from app.adapters import locks

    monkeypatch.setattr(locks, "heartbeat", Heartbeat(interval=0.05))
    redis = fakeredis.FakeRedis()
    with named_lock(redis, "l", lease_seconds=0.3, max_hold_seconds=0.2, wait_seconds=0):
        time.sleep(0.8)
        assert not redis.exists("l")
