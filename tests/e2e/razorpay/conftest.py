"""Fixtures for the Razorpay tests: the local Razorpay stand-in and an app pointed at it."""

from __future__ import annotations

import pytest

from tests.razorpay_stub import RazorpayStub, razorpay_changes


@pytest.fixture
def rzp():
    with RazorpayStub() as stub:
        yield stub


@pytest.fixture
def settings(make_settings, rzp):
    return make_settings("pg", **razorpay_changes(rzp))


@pytest.fixture
def customer(make_key):
    return make_key("customer", "c-1")
