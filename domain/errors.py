"""Domain errors: every rule the aggregates enforce raises one of these."""

from __future__ import annotations


class DomainError(Exception):
    """A business rule refused the command; ``field`` names the input it concerns, if any."""

    field: str | None = None


class InvalidAmountError(DomainError, ValueError):
    """An amount is not a valid integer number of minor units."""


class UnknownCurrencyError(DomainError, ValueError):
    """The currency is not an ISO 4217 code."""


class CurrencyMismatchError(DomainError, ValueError):
    """Two amounts in different currencies were combined."""


class InvalidCheckoutError(DomainError):
    """The checkout cannot be quoted (empty, too large, mixed up)."""

    field = "items"


class NotFoundError(DomainError):
    """The thing asked for does not exist."""


class CheckoutSessionNotFoundError(NotFoundError):
    """No checkout session with this id was ever created."""


class CheckoutSessionExpiredError(DomainError):
    """The checkout session has expired."""


class CheckoutConflictError(DomainError):
    """The checkout session cannot be confirmed in its current state."""


class PaymentNotFoundError(NotFoundError):
    """No payment with this id."""


class OrderNotFoundError(NotFoundError):
    """No order with this id."""


class RefundNotFoundError(NotFoundError):
    """The order has no refund with this id."""

    field = "refund_id"


class SettlementRunNotFoundError(NotFoundError):
    """No settlement run with this id."""


class VerificationNotFoundError(NotFoundError):
    """No verification with this id."""


class InvalidPeriodError(DomainError):
    """A settlement period is malformed or reversed."""

    field = "period_end"


class PaymentStateError(DomainError):
    """The payment cannot make this transition from its current status."""


class PaymentDeclinedError(DomainError):
    """The provider declined the payment."""

    def __init__(self, payment_id: str, reason: str) -> None:
        super().__init__(f"payment declined: {reason}")
        self.payment_id = payment_id
        self.reason = reason


class RefundExceedsRemainingError(DomainError):
    """A refund asks for more than is left to refund."""

    field = "amount"


class RefundStateError(DomainError):
    """The refund cannot make this transition (it has already failed)."""


class InvalidRefundError(DomainError):
    """A refund is malformed (non-positive amount, unknown seller)."""

    field = "amount"

    def __init__(self, message: str, field: str = "amount") -> None:
        super().__init__(message)
        self.field = field


class AllocationStateError(DomainError):
    """The allocation cannot make this transition from its current state."""


class SettlementStateError(DomainError):
    """The settlement cannot make this transition from its current status."""


class ConcurrentChangeError(DomainError):
    """Someone else changed the same thing at the same time; retry."""


class InvalidSellerAccountError(DomainError):
    """A seller's payout account is missing or malformed."""


class ActionProofError(DomainError):
    """The proof a customer's browser brought back from the provider (a signed confirmation) is
    missing, forged, or names a payment that does not match ours: nothing changes."""


class RefundNotManualError(RefundStateError):
    """The refund does not wait to be paid by hand (it went through the provider)."""
