"""The SMTP adapter against a real aiosmtpd server that offers STARTTLS and requires it, and AUTH:
the URL's credentials are sent only inside TLS, and the message arrives with both parts."""

from __future__ import annotations

import datetime as dt
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.adapters.mail import SmtpMailer
from domain.ports import MailMessage, MailNotSentError
from tests.integration.test_workers_jobs import Sink, _free_port

pytestmark = pytest.mark.integration


def _self_signed(tmp_path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture
def tls_server(tmp_path):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes, bool]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password, session.ssl is not None))
        return AuthResult(success=auth_data.login == b"mailer" and auth_data.password == b"p@ss word")

    sink = Sink()
    port = _free_port()
    controller = Controller(
        sink,
        hostname="localhost",
        port=port,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    controller.start()
    client_tls = ssl.create_default_context(cafile=cert)
    yield sink, port, client_tls, logins
    controller.stop()


MESSAGE = MailMessage(
    to="ann@example.com",
    subject="Your order is confirmed",
    text="plain words",
    html="<p>html words</p>",
    message_id="<n-1@tally.notifications>",
    headers={"X-Tally-Notification-Id": "n-1"},
)


def test_starttls_is_used_when_offered_and_credentials_go_inside_it(tls_server):
    sink, port, client_tls, logins = tls_server
    url = f"smtp://mailer:p%40ss%20word@localhost:{port}"
    SmtpMailer(url, "tally@example.com", tls_context=client_tls).send(MESSAGE)
    assert logins == [(b"mailer", b"p@ss word", True)]
    [received] = sink.messages
    assert received["Message-ID"] == "<n-1@tally.notifications>" and received["To"] == "ann@example.com"
    parts = [part.get_content_type() for part in received.walk() if not part.is_multipart()]
    assert parts == ["text/plain", "text/html"]


def test_wrong_credentials_or_an_untrusted_certificate_are_not_sent(tls_server):
    sink, port, client_tls, _ = tls_server
    with pytest.raises(MailNotSentError):
        SmtpMailer(f"smtp://mailer:wrong@localhost:{port}", "t@x", tls_context=client_tls).send(MESSAGE)
    with pytest.raises(MailNotSentError):  # the default trust store does not know this certificate
        SmtpMailer(f"smtp://mailer:p%40ss%20word@localhost:{port}", "t@x").send(MESSAGE)
    assert sink.messages == []
