"""Exit codes every operator command keeps: 0 ok, 1 a finding (a breach, a mismatch, a payout that
failed), 2 usage (click's own), 3 could not run (the database, Redis or the provider unreachable).

``could_not_run`` wraps a command so that an unreachable dependency is one clear line and exit 3,
never a traceback."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import click

from app.adapters.outages import DEPENDENCY_ERRORS, dependency_of
from app.adapters.schema import SchemaOutOfDateError
from domain.ports import ProviderConfigurationError, ProviderUnavailableError

OK, FINDING, USAGE, COULD_NOT_RUN = 0, 1, 2, 3

log = logging.getLogger(__name__)

# The same errors the web answers with a 503 (app/adapters/outages.py), and the provider's.
NAMES = {"database": "the database", "redis": "Redis"}
PROVIDER: dict[type[Exception], str] = {
    ProviderUnavailableError: "the payment provider",
    ProviderConfigurationError: "the payment provider (configuration)",
}
UNREACHABLE: tuple[type[BaseException], ...] = (*DEPENDENCY_ERRORS, *PROVIDER)


def _unreachable(exc: BaseException) -> str:
    dependency = dependency_of(exc)
    if dependency is not None:
        return NAMES[dependency]
    return next(name for kind, name in PROVIDER.items() if isinstance(exc, kind))


def could_not_run(callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except UNREACHABLE as exc:
            what = _unreachable(exc)
            log.error("command could not run: %s unreachable (%s)", what, type(exc).__name__)
            click.echo(f"could not run: {what} is unreachable ({type(exc).__name__})", err=True)
            raise SystemExit(COULD_NOT_RUN) from None
        except SchemaOutOfDateError as exc:
            click.echo(f"could not run: {exc}", err=True)
            raise SystemExit(COULD_NOT_RUN) from None

    return wrapper


def guard(command: click.Command) -> click.Command:
    """Wrap ``command`` (and, for a group, each of its commands) with :func:`could_not_run`."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            guard(sub)
    elif command.callback is not None and command.callback not in _GUARDED:
        command.callback = could_not_run(command.callback)
        _GUARDED.add(command.callback)
    return command


_GUARDED: set[Callable[..., Any]] = set()
