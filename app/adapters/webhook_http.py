"""The WebhookSender port over HTTP(S), with the SSRF guard.

A URL must be https and every address its host resolves to must be public (not loopback,
private, link-local, multicast, reserved or unspecified), checked when the endpoint is
registered and again at each delivery, since DNS can change; the connection then goes to the
address that was checked (no second lookup an attacker could answer differently). Redirects
are never followed. ``WEBHOOKS_ALLOW_PRIVATE=1`` (development and tests) lifts the address check
and also admits plain http.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

from domain.ports import WebhookNotDeliveredError

TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 64 * 1024
# A kept-alive connection idle longer than this is not reused: receivers close idle ones, and a
# POST on a connection the peer just closed would fail for nothing.
KEEP_IDLE_SECONDS = 4.0


class UnsafeWebhookUrlError(ValueError):
    """A URL webhooks may not be sent to."""


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def resolve(url: str, allow_private: bool) -> tuple[str, str, int, str, str]:
    """(scheme, host, port, path with query, address to connect to) or UnsafeWebhookUrlError."""
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        raise UnsafeWebhookUrlError("the URL must be https://host/…")
    if parts.username or parts.password:
        raise UnsafeWebhookUrlError("the URL may not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeWebhookUrlError("the URL's port is not a number from 1 to 65535") from None
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnsafeWebhookUrlError(f"{parts.hostname} does not resolve") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise UnsafeWebhookUrlError(f"{parts.hostname} does not resolve")
    if not allow_private and not all(_public(address) for address in addresses):
        raise UnsafeWebhookUrlError(
            f"{parts.hostname} resolves to a loopback, private, link-local or multicast address"
        )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname, port, path, addresses[0]


def _connect(address: str, port: int, timeout: float | None) -> socket.socket:
    sock = socket.create_connection((address, port), timeout)
    # http.client sends the headers and the body in two writes: without this, Nagle's algorithm
    # holds the body until the peer's delayed ACK (40 ms a POST on a kept-alive connection).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, whatever the name resolves to now."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = _connect(self.address, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.address = address
        self.tls = context

    def connect(self) -> None:
        sock = _connect(self.address, self.port, self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


class HttpWebhookSender:
    """POSTs to the checked address; the answer's status, never a redirect. A connection is kept
    alive per thread and reused for the next POST to the same host, port and checked address."""

    def __init__(self, allow_private: bool = False, timeout: float = TIMEOUT_SECONDS) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.context = ssl.create_default_context()
        self.local = threading.local()

    def _connection(self, scheme: str, host: str, port: int, address: str) -> http.client.HTTPConnection:
        kept: dict[tuple[str, str, int, str], tuple[http.client.HTTPConnection, float]]
        kept = self.local.__dict__.setdefault("kept", {})
        key = (scheme, host, port, address)
        found = kept.pop(key, None)
        if found is not None:
            connection, idle_since = found
            if time.monotonic() - idle_since < KEEP_IDLE_SECONDS:
                return connection
            connection.close()
        if scheme == "https":
            return _PinnedHTTPSConnection(host, port, address, self.timeout, self.context)
        return _PinnedHTTPConnection(host, port, address, self.timeout)

    def check(self, url: str) -> None:
        """Raise UnsafeWebhookUrlError for a URL webhooks may not be sent to."""
        resolve(url, self.allow_private)

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            scheme, host, port, path, address = resolve(url, self.allow_private)
        except UnsafeWebhookUrlError as exc:
            raise WebhookNotDeliveredError(str(exc)) from None
        connection = self._connection(scheme, host, port, address)
        try:
            connection.request("POST", path, body=body, headers=dict(headers))
            response = connection.getresponse()
            response.read(MAX_RESPONSE_BYTES)
            status = response.status
            reusable = not response.will_close and response.isclosed()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise WebhookNotDeliveredError(type(exc).__name__) from None
        if reusable:
            self.local.kept[(scheme, host, port, address)] = (connection, time.monotonic())
        else:
            connection.close()
        return status
