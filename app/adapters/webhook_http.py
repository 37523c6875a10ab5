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
from collections.abc import Mapping
from urllib.parse import urlsplit

from domain.ports import WebhookNotDeliveredError

TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 64 * 1024


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


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, whatever the name resolves to now."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.address = address
        self.tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


class HttpWebhookSender:
    """One connection per POST, to the checked address; the answer's status, never a redirect."""

    def __init__(self, allow_private: bool = False, timeout: float = TIMEOUT_SECONDS) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.context = ssl.create_default_context()

    def check(self, url: str) -> None:
        """Raise UnsafeWebhookUrlError for a URL webhooks may not be sent to."""
        resolve(url, self.allow_private)

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            scheme, host, port, path, address = resolve(url, self.allow_private)
        except UnsafeWebhookUrlError as exc:
            raise WebhookNotDeliveredError(str(exc)) from None
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = _PinnedHTTPSConnection(host, port, address, self.timeout, self.context)
        else:
            connection = _PinnedHTTPConnection(host, port, address, self.timeout)
        try:
            connection.request("POST", path, body=body, headers=dict(headers))
            response = connection.getresponse()
            response.read(MAX_RESPONSE_BYTES)
            return response.status
        except (OSError, http.client.HTTPException) as exc:
            raise WebhookNotDeliveredError(type(exc).__name__) from None
        finally:
            connection.close()
