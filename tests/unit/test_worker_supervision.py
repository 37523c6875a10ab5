"""`flask worker` and `flask cron` start again after Redis or the database went away."""

from __future__ import annotations

import fakeredis
import pytest
import redis.exceptions
from sqlalchemy.exc import OperationalError

from app.bootstrap import Container
from app.config import Settings
from workers import worker as supervised

pytestmark = pytest.mark.unit


class FakeJobs:
    def __init__(self) -> None:
        self.catch_ups = 0

    def projections_changed(self) -> None:
        self.catch_ups += 1


def _container() -> tuple[Container, FakeJobs]:
    jobs = FakeJobs()
    settings = Settings(redis_url="redis://127.0.0.1:1/0", key_prefix="sup")
    return Container(settings, redis=fakeredis.FakeRedis(), jobs=jobs), jobs


def test_the_worker_starts_again_after_redis_went_away_and_catches_the_read_models_up(monkeypatch):
    container, jobs = _container()
    runs: list[str] = []

    class FlakyWorker:
        def __init__(self, queues, connection, worker_ttl):
            self.name = f"w{len(runs)}"
            self._stop_requested = False
            if len(runs) == 0:
                runs.append("constructor failed")
                raise redis.exceptions.ConnectionError("refused")

        def work(self, burst, with_scheduler):
            runs.append("worked")
            if len(runs) == 2:  # RQ's worker quits (returns) on an error in its loop
                return True
            self._stop_requested = True  # then SIGTERM: stop for good
            return False

    monkeypatch.setattr(supervised, "SimpleWorker", FlakyWorker)
    monkeypatch.setattr(supervised.time, "sleep", lambda seconds: None)
    assert supervised.run_worker(container, fork=False) is True
    assert runs == ["constructor failed", "worked", "worked"]
    assert jobs.catch_ups == 2  # each start queued a catch-up of every read model


def test_the_scheduler_starts_again_after_an_outage_and_stops_when_asked(monkeypatch):
    container, _ = _container()
    starts: list[str] = []

    class FlakyCron:
        def start(self) -> None:
            starts.append("start")
            if len(starts) == 1:
                raise redis.exceptions.ConnectionError("refused")
            if len(starts) == 2:
                raise OperationalError("select", {}, Exception("db down"))

    monkeypatch.setattr(supervised, "build_cron", lambda container: FlakyCron())
    monkeypatch.setattr(supervised.time, "sleep", lambda seconds: None)
    supervised.run_cron(container)
    assert starts == ["start", "start", "start"]


def test_a_bug_is_not_an_outage_the_worker_does_not_loop_on_it(monkeypatch):
    container, _ = _container()

    class BrokenWorker:
        def __init__(self, queues, connection, worker_ttl):
            raise ValueError("a bug")

    monkeypatch.setattr(supervised, "SimpleWorker", BrokenWorker)
    with pytest.raises(ValueError):
        supervised.run_worker(container, fork=False)
