"""The Razorpay stand-in refuses what Razorpay's API reference says Razorpay refuses, through the
real SDK: so a test that passes against it does not pass only because the stand-in is lenient."""

from __future__ import annotations

import pytest
import razorpay
from razorpay.errors import BadRequestError, ServerError

pytestmark = pytest.mark.e2e


@pytest.fixture
def sdk(rzp):
    return razorpay.Client(auth=(rzp.key_id, rzp.key_secret), base_url=rzp.url)


def captured(sdk, rzp, amount: int = 5000):
    order = sdk.order.create({"amount": amount, "currency": "INR", "receipt": "r-1"})
    paid, _ = rzp.pay(order["id"])
    return order, paid


def test_wrong_credentials_are_refused_as_authentication_failed(rzp):
    wrong = razorpay.Client(auth=(rzp.key_id, "not-the-secret"), base_url=rzp.url)
    with pytest.raises(BadRequestError, match="Authentication failed"):
        wrong.order.create({"amount": 5000, "currency": "INR"})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"amount": 99, "currency": "INR"}, "atleast"),  # the minimum is 100 paise
        ({"amount": "100", "currency": "INR"}, "integer"),
        ({"amount": 5000, "currency": "INR", "receipt": "x" * 41}, "40 characters"),
    ],
)
def test_an_order_is_refused_below_the_minimum_or_with_a_bad_amount_or_receipt(sdk, body, message):
    with pytest.raises(BadRequestError, match=message):
        sdk.order.create(body)


def test_orders_are_found_by_receipt_and_paged_by_count_and_skip(sdk):
    made = [
        sdk.order.create({"amount": 100 + i, "currency": "INR", "receipt": f"r-{i % 2}"}) for i in range(5)
    ]
    assert [o["id"] for o in sdk.order.all({"receipt": "r-1"})["items"]] == [made[3]["id"], made[1]["id"]]
    page = sdk.order.all({"count": 2, "skip": 1})
    assert [o["id"] for o in page["items"]] == [made[3]["id"], made[2]["id"]]
    with pytest.raises(BadRequestError):
        sdk.order.all({"count": 101})


def test_a_capture_must_match_the_authorized_amount_and_happens_once(sdk, rzp):
    order = sdk.order.create({"amount": 5000, "currency": "INR"})
    paid, _ = rzp.pay(order["id"], capture=False)
    with pytest.raises(BadRequestError, match="equal"):
        sdk.payment.capture(paid["id"], 4000, {"currency": "INR"})
    assert sdk.payment.capture(paid["id"], 5000, {"currency": "INR"})["status"] == "captured"
    with pytest.raises(BadRequestError, match="already been captured"):
        sdk.payment.capture(paid["id"], 5000, {"currency": "INR"})


def test_a_refund_never_exceeds_the_capture_and_its_key_replays_the_same_body_only(sdk, rzp):
    _, paid = captured(sdk, rzp)
    key = {"headers": {"X-Refund-Idempotency": "key-0123456789"}}
    first = sdk.payment.refund(paid["id"], {"amount": 1000}, **key)
    assert sdk.payment.refund(paid["id"], {"amount": 1000}, **key)["id"] == first["id"]
    with pytest.raises(BadRequestError, match="different request body"):
        sdk.payment.refund(paid["id"], {"amount": 2000}, **key)
    with pytest.raises(BadRequestError, match="idempotency key"):
        sdk.payment.refund(paid["id"], {"amount": 10}, headers={"X-Refund-Idempotency": "short"})
    with pytest.raises(BadRequestError, match="greater than amount captured"):
        sdk.payment.refund(paid["id"], {"amount": 4001})
    assert len(rzp.refunds) == 1


def test_route_transfers_need_a_captured_payment_an_active_account_and_funds_left(sdk, rzp):
    order = sdk.order.create({"amount": 5000, "currency": "INR"})
    authorized, _ = rzp.pay(order["id"], capture=False)
    transfer = {"account": "acc_ok", "amount": 1000, "currency": "INR"}
    with pytest.raises(BadRequestError, match="captured"):
        sdk.payment.transfer(authorized["id"], {"transfers": [transfer]})
    _, paid = captured(sdk, rzp)
    with pytest.raises(BadRequestError, match="account"):
        sdk.payment.transfer(paid["id"], {"transfers": [{**transfer, "account": "acc_failInactive"}]})
    made = sdk.payment.transfer(paid["id"], {"transfers": [{**transfer, "amount": 4000}]})["items"][0]
    with pytest.raises(BadRequestError, match="exceeds"):  # 4000 of 5000 transferred, 1001 asked
        sdk.payment.transfer(paid["id"], {"transfers": [{**transfer, "amount": 1001}]})
    assert sdk.transfer.reverse(made["id"], {"amount": 1500})["amount"] == 1500
    with pytest.raises(BadRequestError, match="exceeds"):
        sdk.transfer.reverse(made["id"], {"amount": 3000})


def test_planted_faults_answer_a_server_error_or_drop_the_answer(sdk, rzp):
    rzp.fail_next("POST", "/v1/orders")
    with pytest.raises(ServerError):
        sdk.order.create({"amount": 5000, "currency": "INR"})
    assert rzp.orders == {}
    rzp.drop_next("POST", "/v1/orders")
    with pytest.raises(Exception):  # noqa: B017  (requests' ConnectionError or ChunkedEncodingError)
        sdk.order.create({"amount": 5000, "currency": "INR"})
    assert len(rzp.orders) == 1  # made, only its answer was lost
