"""Attempts at one provider write: the first uses tally's id as the idempotency key; each later
one is counted before the call, looks the object up first, and uses a key of its own, so a 5xx
the provider saved for the first key (and replays for 24 hours) never blocks the retry."""

from __future__ import annotations

from app.commands.deps import Deps


def attempt(deps: Deps, kind: str, object_id: str) -> tuple[str, bool]:
    """(idempotency key, whether an earlier attempt may have reached the provider)."""
    number = deps.records.count_attempt(f"{kind}:{object_id}")
    return (object_id if number == 1 else f"{object_id}/{number}"), number > 1


def attempts(deps: Deps, kind: str, object_ids: list[str]) -> dict[str, tuple[str, bool]]:
    """:func:`attempt` of several provider writes, counted in one round trip before any is made."""
    numbers = deps.records.count_attempts([f"{kind}:{object_id}" for object_id in object_ids])
    out = {}
    for object_id in object_ids:
        number = numbers[f"{kind}:{object_id}"]
        out[object_id] = (object_id if number == 1 else f"{object_id}/{number}"), number > 1
    return out
