"""Command tests on fakes: the POPO event store, in-memory ports, read models on in-memory SQLite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import StaticPool

from app.adapters.read_models import SqlReadModels
from domain.services import Marketplace
from projections.tables import metadata as read_metadata
from tests.fakes import FakeDeps
from tests.unit.conftest import POPO_ENV


@pytest.fixture
def deps() -> Iterator[FakeDeps]:
    marketplace = Marketplace(env=POPO_ENV)
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    read_metadata.create_all(engine)
    yield FakeDeps(marketplace=marketplace, read_models=SqlReadModels(marketplace, engine))
    marketplace.close()
    engine.dispose()
