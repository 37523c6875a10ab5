"""Bank transfers confirmed by an admin: the payment's reference the customer types into the bank's
form, and its check digit (Luhn mod 32 over Crockford's base32, so one mistyped or two swapped
characters are caught before an admin matches a receipt to the wrong payment)."""

from __future__ import annotations

import hashlib

BANK_TRANSFER = "bank_transfer"  # the payment method, and the provider that takes it (tally itself)
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
PREFIX = "TLY-"


def _check_character(body: str) -> str:
    """Luhn mod N (N = 32) of ``body``: the character that makes the whole sum to 0 mod 32."""
    n = len(ALPHABET)
    total, factor = 0, 2
    for char in reversed(body):
        addend = factor * ALPHABET.index(char)
        total += addend // n + addend % n
        factor = 1 if factor == 2 else 2
    return ALPHABET[(n - total % n) % n]


def reference_for(payment_id: str) -> str:
    """``TLY-XXXX-XXXX-C``: eight characters derived from the payment id, then the check character."""
    digest = int.from_bytes(hashlib.sha256(payment_id.encode()).digest()[:8], "big")
    body = "".join(ALPHABET[(digest >> (5 * i)) & 31] for i in range(8))
    return f"{PREFIX}{body[:4]}-{body[4:]}-{_check_character(body)}"


def normalized_reference(reference: str) -> str | None:
    """The reference as tally wrote it, from what a customer typed (any case, separators or
    none), or None when its check character does not match."""
    text = reference.upper().replace("-", "").replace(" ", "")
    if not text.startswith(PREFIX.rstrip("-")) or len(text) != 12:
        return None
    body, check = text[3:11], text[11]
    if not all(char in ALPHABET for char in body) or _check_character(body) != check:
        return None
    return f"{PREFIX}{body[:4]}-{body[4:]}-{check}"


def is_valid_reference(reference: str) -> bool:
    """Whether the check character matches (case and the separators do not matter)."""
    return normalized_reference(reference) is not None
