"""Webhook signatures against Stripe's own verifier, the backoff, and the SSRF guard's address rules."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st

from app.adapters.webhook_http import UnsafeWebhookUrlError, resolve
from app.commands.webhooks import backoff, signature

pytestmark = pytest.mark.unit


@given(body=st.text(max_size=200), secret=st.text(min_size=1, max_size=40))
def test_our_signature_is_what_stripe_verifies(body: str, secret: str) -> None:
    secret = "whsec_" + secret
    header = signature(secret, int(time.time()), body)
    assert stripe.WebhookSignature.verify_header(body, header, secret, tolerance=300)


def test_stripe_refuses_another_secret_or_body() -> None:
    header = signature("whsec_a", int(time.time()), '{"id":"evt_1"}')
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header('{"id":"evt_1"}', header, "whsec_b", tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header('{"id":"evt_2"}', header, "whsec_a", tolerance=300)


def test_the_header_is_the_contracts_exactly() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"whsec_k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert signature("whsec_k", 1700000000, "{}") == f"t=1700000000,v1={expected}"


def test_backoff_doubles_from_30_seconds_to_6_hours_scaled_by_jitter() -> None:
    assert [backoff(n, 1.0) for n in (1, 2, 3)] == [timedelta(seconds=s) for s in (30, 60, 120)]
    assert backoff(30, 1.0) == timedelta(hours=6)
    assert backoff(3, 0.5) == timedelta(seconds=60)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/",
        "https://172.16.0.1/",
        "https://192.168.1.1/",
        "https://169.254.169.254/latest/meta-data",  # cloud metadata: link-local
        "https://224.0.0.1/",
        "https://0.0.0.0/",
        "https://[::1]/",
        "https://[fe80::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[fd00::1]/",
        "http://93.184.215.14/",  # public, but not https
        "ftp://93.184.215.14/",
        "https://user:pw@93.184.215.14/",
        "https:///nohost",
    ],
)
def test_unsafe_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeWebhookUrlError):
        resolve(url, allow_private=False)


def test_a_public_address_over_https_is_accepted_and_pinned() -> None:
    assert resolve("https://93.184.215.14:8443/h?x=1", allow_private=False) == (
        "https",
        "93.184.215.14",
        8443,
        "/h?x=1",
        "93.184.215.14",
    )


def test_allowing_private_addresses_admits_loopback_and_http() -> None:
    assert resolve("http://127.0.0.1:9/x", allow_private=True)[4] == "127.0.0.1"


def test_the_readme_snippet_verifies_our_signature() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("Verifying a delivery in Python", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(code, scope)
    body = b'{"id":"evt_1","type":"order.placed"}'
    header = signature("whsec_x", int(time.time()), body.decode())
    assert scope["verify"](body, header, "whsec_x")
    assert not scope["verify"](body + b" ", header, "whsec_x")
    assert not scope["verify"](body, header, "whsec_y")
