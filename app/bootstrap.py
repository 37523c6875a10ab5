"""The composition root: builds every adapter from Settings, lazily and once per process.

Nothing here connects at import time, and everything is rebuilt in a process that was
forked after it was built (gunicorn --preload, RQ work horses): a connection pool must
never cross a fork.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from redis import Redis
from sqlalchemy.engine import Engine

from app.adapters import schema
from app.adapters.checkout_sessions import RedisCheckoutSessions
from app.adapters.db import build_engine, ddl_lock, ensure_schema
from app.adapters.locks import RedisLocks
from app.adapters.mail import SmtpMailer
from app.adapters.mail_templates import JinjaMailTemplates
from app.adapters.outbox import SqlOutbox
from app.adapters.providers import build_gateway
from app.adapters.queue import InlineJobs, RqJobs
from app.adapters.read_models import SqlAuditor, SqlReadModels
from app.adapters.records import SqlRecords
from app.adapters.secret_box import SecretBox
from app.adapters.webhook_endpoints import WebhookEndpoints
from app.adapters.webhook_http import HttpWebhookSender
from app.adapters.webhook_store import SqlWebhookStore
from app.audit.fees import FeeRule
from app.commands.deps import Policy
from app.commands.notifications import deliver_notifications
from app.commands.settlement_runs import execute_settlement_run, settle_run_chunk
from app.commands.verification import execute_verification
from app.commands.webhooks import deliver_webhooks
from app.config import Settings
from domain.payable import PayableRule
from domain.ports import Mailer, PaymentGateway
from domain.services import Marketplace

T = TypeVar("T")

_STAND_IN_SERVERS: dict[str, Any] = {}
_STAND_IN_LOCK = threading.Lock()


def _stand_in_redis(name: str) -> Redis:
    """The in-process Redis stand-in used when REDIS_URL is unset (one server per name)."""
    import fakeredis

    with _STAND_IN_LOCK:
        server = _STAND_IN_SERVERS.setdefault(name, fakeredis.FakeServer())
    return fakeredis.FakeRedis(server=server)


# How long the event store waits for a pooled connection. It retries a failed statement ten times
# (0.2 s apart), so this bounds a request to ~6 s while PostgreSQL is down instead of 10 x 30 s.
STORE_POOL_WAIT_SECONDS = 0.4


def _shorten_store_pool_wait(marketplace: Marketplace) -> None:
    pool = getattr(getattr(marketplace.recorder, "datastore", None), "pool", None)
    if pool is not None and hasattr(pool, "timeout"):
        pool.timeout = STORE_POOL_WAIT_SECONDS  # POSTGRES_CONNECT_TIMEOUT takes whole seconds only


def redis_client(url: str, socket_timeout: float) -> Redis:
    """A Redis client that fails fast when Redis is down, and reconnects once when a pooled
    connection died (a restarted Redis) before giving up."""
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=min(2.0, socket_timeout),
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 2),
        health_check_interval=30,
    )


class Container:
    """Holds the adapters of one process; tests pass fakes as keyword overrides.

    It provides ``app.commands.deps.Deps`` (the ports the commands use) and, for the delivery
    side, the engine, Redis and settings.
    """

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        self.settings = settings
        self._overrides = overrides
        self._pid = os.getpid()
        self._built: dict[str, Any] = {}
        self._lock = threading.RLock()

    def _get(self, name: str, factory: Callable[[], T]) -> T:
        if name in self._overrides:
            return cast(T, self._overrides[name])  # a test's fake, standing in for the adapter
        if self._pid != os.getpid():
            # Forked: drop (without closing) what the parent built; it belongs to the parent.
            with self._lock:
                if self._pid != os.getpid():
                    self._built = {}
                    self._pid = os.getpid()
        try:
            return cast(T, self._built[name])  # built by this factory earlier
        except KeyError:
            pass
        with self._lock:
            if name not in self._built:
                self._built[name] = factory()
            return cast(T, self._built[name])

    @property
    def raw_engine(self) -> Engine:
        """The database, its schema not checked yet (``db upgrade`` starts from it)."""

        def factory() -> Engine:
            db = self.settings.database
            engine = build_engine(db)
            with ddl_lock(engine):
                ensure_schema(engine, db.schema)
            return engine

        return self._get("raw_engine", factory)

    @property
    def engine(self) -> Engine:
        """The database with this release's schema: created on an empty database, refused (one
        line: run ``db upgrade``) on one an older release made (app/adapters/schema.py)."""

        def factory() -> Engine:
            from projections import versions

            engine = self.raw_engine
            with ddl_lock(engine):  # processes starting together must not race their DDL
                schema.prepare(engine)
                stale = versions.prepare(engine)
            if stale:
                raise schema.SchemaOutOfDateError(
                    f"read models {', '.join(stale)} were built by another release: run "
                    "`flask --app wsgi db upgrade` first"
                )
            return engine

        return self._get("engine", factory)

    @property
    def autocommit(self) -> Engine:
        """The same pool for single-statement writes: no BEGIN/COMMIT round trips."""
        return self._get("autocommit", lambda: self.engine.execution_options(isolation_level="AUTOCOMMIT"))

    @property
    def marketplace(self) -> Marketplace:
        return self._marketplace(self.engine)  # the schema is checked before any event is written

    @property
    def marketplace_unchecked(self) -> Marketplace:
        """The event store before the schema is checked (``db upgrade`` rebuilds read models with it)."""
        return self._marketplace(self.raw_engine)

    def _marketplace(self, engine: Engine) -> Marketplace:
        def factory() -> Marketplace:
            with ddl_lock(engine):  # the event store runs CREATE OR REPLACE FUNCTION on every start
                marketplace = Marketplace(env=self.settings.database.eventsourcing_env())
            _shorten_store_pool_wait(marketplace)
            return marketplace

        return self._get("marketplace", factory)

    @property
    def redis(self) -> Redis:
        def factory() -> Redis:
            if self.settings.redis_url:
                return redis_client(self.settings.redis_url, self.settings.redis_socket_timeout_seconds)
            return _stand_in_redis(self.settings.key_prefix)

        return self._get("redis", factory)

    @property
    def sessions(self) -> RedisCheckoutSessions:
        return self._get("sessions", lambda: RedisCheckoutSessions(self.redis, self.settings.key_prefix))

    @property
    def gateway(self) -> PaymentGateway:
        return self._get("gateway", lambda: build_gateway(self.settings))

    @property
    def jobs(self) -> InlineJobs | RqJobs:
        """Where background work goes: RQ when REDIS_URL is set, else inline."""

        def factory() -> InlineJobs | RqJobs:
            if self.settings.redis_url:
                return RqJobs(self.redis, self.settings.key_prefix)
            return InlineJobs(
                {
                    "catch_up": self.read_models.catch_up,
                    "settlement_run": lambda run_id: execute_settlement_run(self, run_id),
                    "settlement_chunk": lambda run_id, index: settle_run_chunk(self, run_id, index),
                    "verification": lambda verification_id: execute_verification(self, verification_id),
                    "notifications": lambda: deliver_notifications(self),
                    "webhooks": lambda: deliver_webhooks(self),
                    "after_catch_up": lambda: (deliver_notifications(self), deliver_webhooks(self)),
                }
            )

        return self._get("jobs", factory)

    @property
    def policy(self) -> Policy:
        settings = self.settings
        return self._get(
            "policy",
            lambda: Policy(
                platform_fee_bps=settings.platform_fee_bps,
                checkout_session_ttl_seconds=settings.checkout_session_ttl_seconds,
                reverse_payouts_on_refund=settings.payment_provider == "stripe"
                and settings.stripe_refunds_of_paid_out == "reverse_transfer",
                payable=PayableRule(settings.settle_after, settings.settlement_hold_days),
                admin_email=settings.admin_email,
                bank_transfer_ttl_days=settings.bank_transfer_ttl_days,
            ),
        )

    @property
    def locks(self) -> RedisLocks:
        return self._get("locks", lambda: RedisLocks(self.redis, self.settings.key_prefix))

    @property
    def records(self) -> SqlRecords:
        return self._get("records", lambda: SqlRecords(self.engine, self.autocommit))

    @property
    def outbox(self) -> SqlOutbox:
        return self._get("outbox", lambda: SqlOutbox(self.engine))

    @property
    def templates(self) -> JinjaMailTemplates:
        return self._get("templates", lambda: JinjaMailTemplates(self.settings.mail_locale))

    @property
    def mailer(self) -> Mailer | None:
        """SMTP when SMTP_URL is set; without it nothing is mailed."""
        url = self.settings.smtp_url
        return self._get("mailer", lambda: SmtpMailer(url, self.settings.mail_from) if url else None)

    @property
    def secret_box(self) -> SecretBox:
        return self._get("secret_box", lambda: SecretBox(self.settings.webhook_secret_key))

    @property
    def webhooks(self) -> SqlWebhookStore:
        return self._get("webhooks", lambda: SqlWebhookStore(self.engine, self.secret_box))

    @property
    def webhook_endpoints(self) -> WebhookEndpoints:
        return self._get("webhook_endpoints", lambda: WebhookEndpoints(self.engine, self.secret_box))

    @property
    def webhook_sender(self) -> HttpWebhookSender:
        allow = self.settings.webhooks_allow_private
        return self._get("webhook_sender", lambda: HttpWebhookSender(allow_private=allow))

    @property
    def read_models(self) -> SqlReadModels:
        return self._get("read_models", lambda: SqlReadModels(self.marketplace, self.engine))

    @property
    def auditor(self) -> SqlAuditor:
        return self._get(
            "auditor",
            lambda: SqlAuditor(
                self.marketplace,
                self.engine,
                self.policy.payable,
                FeeRule(self.policy.platform_fee_bps, self.policy.checkout_session_ttl_seconds),
            ),
        )

    def close(self) -> None:
        """Close what this process built."""
        with self._lock:
            built, self._built = self._built, {}
        if self._pid != os.getpid():
            return
        if "marketplace" in built:
            built["marketplace"].close()
        if "engine" in built:
            built["engine"].dispose()
        if "redis" in built and self.settings.redis_url:
            built["redis"].close()


def build(settings: Settings | None = None, **overrides: Any) -> Container:
    """Build the container for these settings (read from the environment when not given)."""
    return Container(settings or Settings.from_env(), **overrides)
