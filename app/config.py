"""Settings, read once from the environment (the only place that reads os.environ)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = f"sqlite:///{ROOT / 'var' / 'tally.db'}"
# What a refund (or lost dispute) of money already transferred to a seller does with Stripe:
# carry a negative adjustment into the seller's next settlement, or reverse the transfer.
REFUNDS_OF_PAID_OUT = ("adjust", "reverse_transfer")
PROVIDERS = ("mock", "stripe", "razorpay")


class SettingsError(ValueError):
    """A setting has a value tally cannot use."""


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name, default) or default
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _int(env: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = env.get(key)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{key} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{key} must be between {low} and {high}, got {value}")
    return value


def _locale(env: Mapping[str, str], key: str, default: str = "en_US") -> str:
    """A locale Babel (CLDR) knows, e.g. en_US or de_DE: a bad one fails at start-up, not per PDF."""
    from babel import Locale, UnknownLocaleError

    value = env.get(key) or default
    try:
        Locale.parse(value)
    except (UnknownLocaleError, ValueError, TypeError):
        raise SettingsError(f"{key} must be a locale such as en_US or de_DE, got {value!r}") from None
    return value


@dataclass(frozen=True)
class Settings:
    """Everything tally can be configured with."""

    database_url: str = DEFAULT_DATABASE_URL
    database_schema: str | None = None
    redis_url: str | None = None
    payment_provider: str = "mock"
    platform_fee_bps: int = 1000
    checkout_session_ttl_seconds: int = 1800
    stripe_api_key: str | None = field(default=None, repr=False)
    stripe_webhook_secret: str | None = field(default=None, repr=False)
    stripe_api_base: str | None = None
    stripe_refunds_of_paid_out: str = "adjust"
    razorpay_key_id: str | None = None
    razorpay_key_secret: str | None = field(default=None, repr=False)
    razorpay_webhook_secret: str | None = field(default=None, repr=False)
    razorpay_api_base: str | None = None
    bank_transfer_enabled: bool = False
    bank_transfer_ttl_days: int = 7
    max_content_length: int = 1_000_000
    log_level: str = "INFO"
    log_format: str = "json"  # json | text
    sentry_dsn: str | None = field(default=None, repr=False)
    key_prefix: str = "tally"
    smtp_url: str | None = field(default=None, repr=False)
    mail_from: str = "tally@localhost"
    # Outages: no statement runs longer than this (0: no limit; gunicorn.conf.py sets one for the
    # web); Redis commands time out too.
    database_statement_timeout_seconds: int = 0
    redis_socket_timeout_seconds: int = 5
    settle_after: str = "placed"
    settlement_hold_days: int = 0
    admin_email: str | None = None
    mail_locale: str = "en_US"
    # PDF documents (invoices, credit notes, statements): the platform named on them, and the
    # locale their numbers are written in (separators; the decimals are always ISO 4217's).
    platform_name: str = "tally"
    document_locale: str = "en_US"
    # Outbound webhooks: the Fernet key their signing secrets are encrypted with (unset: a key
    # file under var/, made once: for development only), and whether private addresses (and
    # plain http) may receive them (development and tests).
    webhook_secret_key: str | None = field(default=None, repr=False)
    webhooks_allow_private: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        provider = env.get("PAYMENT_PROVIDER", "mock") or "mock"
        if provider not in PROVIDERS:
            raise SettingsError(f"PAYMENT_PROVIDER must be mock, stripe or razorpay, got {provider!r}")
        paid_out = env.get("STRIPE_REFUNDS_OF_PAID_OUT", "adjust") or "adjust"
        if paid_out not in REFUNDS_OF_PAID_OUT:
            raise SettingsError(
                f"STRIPE_REFUNDS_OF_PAID_OUT must be adjust or reverse_transfer, got {paid_out!r}"
            )
        settle_after = env.get("SETTLE_AFTER", "placed") or "placed"
        if settle_after not in ("placed", "delivered"):
            raise SettingsError(f"SETTLE_AFTER must be placed or delivered, got {settle_after!r}")
        settings = cls(
            database_url=env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            database_schema=env.get("DATABASE_SCHEMA") or None,
            redis_url=env.get("REDIS_URL") or None,
            payment_provider=provider,
            platform_fee_bps=_int(env, "PLATFORM_FEE_BPS", 1000, 0, 10_000),
            checkout_session_ttl_seconds=_int(env, "CHECKOUT_SESSION_TTL_SECONDS", 1800, 1, 86_400 * 30),
            stripe_api_key=env.get("STRIPE_API_KEY") or None,
            stripe_webhook_secret=env.get("STRIPE_WEBHOOK_SECRET") or None,
            stripe_api_base=env.get("STRIPE_API_BASE") or None,
            stripe_refunds_of_paid_out=paid_out,
            razorpay_key_id=env.get("RAZORPAY_KEY_ID") or None,
            razorpay_key_secret=env.get("RAZORPAY_KEY_SECRET") or None,
            razorpay_webhook_secret=env.get("RAZORPAY_WEBHOOK_SECRET") or None,
            razorpay_api_base=env.get("RAZORPAY_API_BASE") or None,
            bank_transfer_enabled=(env.get("BANK_TRANSFER_ENABLED") or "0")
            not in ("0", "false", "no", "off"),
            bank_transfer_ttl_days=_int(env, "BANK_TRANSFER_TTL_DAYS", 7, 1, 365),
            max_content_length=_int(env, "MAX_CONTENT_LENGTH", 1_000_000, 1024, 100_000_000),
            log_level=env.get("LOG_LEVEL", "INFO") or "INFO",
            log_format=_choice(env, "LOG_FORMAT", "json", ("json", "text")),
            sentry_dsn=env.get("SENTRY_DSN") or None,
            key_prefix=env.get("REDIS_KEY_PREFIX", "tally") or "tally",
            smtp_url=env.get("SMTP_URL") or None,
            mail_from=env.get("MAIL_FROM", "tally@localhost") or "tally@localhost",
            database_statement_timeout_seconds=_int(env, "DATABASE_STATEMENT_TIMEOUT", 0, 0, 86_400),
            redis_socket_timeout_seconds=_int(env, "REDIS_SOCKET_TIMEOUT", 5, 1, 3600),
            settle_after=settle_after,
            settlement_hold_days=_int(env, "SETTLEMENT_HOLD_DAYS", 0, 0, 3650),
            admin_email=env.get("ADMIN_EMAIL") or None,
            mail_locale=env.get("MAIL_LOCALE") or "en_US",
            platform_name=(env.get("PLATFORM_NAME") or "tally").strip() or "tally",
            document_locale=_locale(env, "DOCUMENT_LOCALE"),
            webhook_secret_key=env.get("WEBHOOK_SECRET_KEY") or None,
            webhooks_allow_private=env.get("WEBHOOKS_ALLOW_PRIVATE", "") in ("1", "true", "yes"),
        )
        _ = settings.database  # parse DATABASE_URL now: a bad one fails at start-up
        settings.check_provider()
        settings.check_smtp()
        return settings

    def check_smtp(self) -> None:
        """SMTP_URL, when set, is smtp:// or smtps:// with a host (and a numeric port if any)."""
        if not self.smtp_url:
            return
        from urllib.parse import urlsplit

        parts = urlsplit(self.smtp_url)
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname or not port_ok:
            raise SettingsError("SMTP_URL must be smtp://[user:password@]host[:port] or smtps://…")

    def check_provider(self) -> None:
        """The configured provider's settings, present and well-formed, before anything is served."""
        if self.payment_provider != "stripe":
            return
        if not self.stripe_api_key or not self.stripe_api_key.startswith(("sk_", "rk_")):
            raise SettingsError(
                "PAYMENT_PROVIDER=stripe needs STRIPE_API_KEY, a secret (sk_…) or restricted (rk_…) key"
            )
        if not self.stripe_webhook_secret or not self.stripe_webhook_secret.startswith("whsec_"):
            raise SettingsError(
                "PAYMENT_PROVIDER=stripe needs STRIPE_WEBHOOK_SECRET, the endpoint's whsec_… secret"
            )

    def replace(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def database(self) -> DatabaseConfig:
        return DatabaseConfig.parse(
            self.database_url, self.database_schema, self.database_statement_timeout_seconds
        )


@dataclass(frozen=True)
class DatabaseConfig:
    """One DATABASE_URL, seen by eventsourcing and by SQLAlchemy."""

    kind: str  # "sqlite" | "postgres"
    sqlite_path: str | None = None
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = ""
    password: str = field(default="", repr=False)
    dbname: str = ""
    schema: str | None = None
    statement_timeout_seconds: int = 0

    @classmethod
    def parse(cls, url: str, schema: str | None = None, statement_timeout_seconds: int = 0) -> DatabaseConfig:
        parts = urlsplit(url)
        scheme = parts.scheme.split("+")[0]
        if scheme == "sqlite":
            path = url.split(":///", 1)[1] if ":///" in url else ""
            if not path:
                raise SettingsError("DATABASE_URL for sqlite needs a file path: sqlite:///path/to.db")
            return cls(kind="sqlite", sqlite_path=path)
        if scheme in ("postgres", "postgresql"):
            return cls(
                kind="postgres",
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 5432,
                user=unquote(parts.username or ""),
                password=unquote(parts.password or ""),
                dbname=(parts.path or "/").lstrip("/") or "postgres",
                schema=schema,
                statement_timeout_seconds=statement_timeout_seconds,
            )
        raise SettingsError(f"DATABASE_URL must start with sqlite:/// or postgresql://, got {scheme!r}")

    def eventsourcing_env(self) -> dict[str, str]:
        if self.kind == "sqlite":
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": self.sqlite_path or "",
                "SQLITE_LOCK_TIMEOUT": "30",
                "APPLICATION_RECORDER_TOPIC": "app.adapters.event_store:SQLiteEventRecorder",
            }
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "APPLICATION_RECORDER_TOPIC": "app.adapters.event_store:EventRecorder",  # no NOTIFY
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_POOL_SIZE": "2",
            "POSTGRES_MAX_OVERFLOW": "10",
            "POSTGRES_LOCK_TIMEOUT": "5",
            # Seconds to wait for a pooled connection (an int); app.bootstrap shortens it further,
            # since the store retries a failed connection ten times.
            "POSTGRES_CONNECT_TIMEOUT": "1",
        }
        if self.schema:
            env["POSTGRES_SCHEMA"] = self.schema
        return env

    def sqlalchemy_url(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.sqlite_path}"
        from urllib.parse import quote

        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql+psycopg://{auth}@{self.host}:{self.port}/{self.dbname}"
