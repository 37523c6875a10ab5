"""Fixtures for the Stripe tests: the local Stripe stand-in and an app pointed at it."""

from __future__ import annotations

import pytest

from tests.stripe_stub import StripeStub, stripe_changes


@pytest.fixture
def stub():
    with StripeStub() as stub:
        yield stub


@pytest.fixture
def settings(make_settings, stub):
    return make_settings("pg", **stripe_changes(stub))


@pytest.fixture
def customer(make_key):
    return make_key("customer", "c-1")
