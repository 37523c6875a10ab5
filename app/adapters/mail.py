"""The Mailer port over SMTP (``SMTP_URL``: smtp://user:password@host:port, or smtps:// for TLS
from the first byte). STARTTLS is used whenever the server offers it; credentials are sent
only after it (or over smtps)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import unquote, urlsplit

from domain.ports import MailMessage, MailNotSentError


class SmtpMailer:
    """One SMTP connection per message: notifications are few and a connection never goes stale."""

    def __init__(
        self, url: str, mail_from: str, timeout: float = 10, tls_context: ssl.SSLContext | None = None
    ) -> None:
        self.parts = urlsplit(url)
        self.mail_from = mail_from
        self.timeout = timeout
        self.tls_context = tls_context or ssl.create_default_context()

    def build(self, message: MailMessage) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self.mail_from
        email["To"] = message.to
        email["Subject"] = message.subject
        email["Date"] = formatdate(usegmt=True)
        if message.message_id:
            email["Message-ID"] = message.message_id
        for name, value in message.headers.items():
            email[name] = value
        email.set_content(message.text)
        if message.html:
            email.add_alternative(message.html, subtype="html")
        return email

    def send(self, message: MailMessage) -> None:
        email = self.build(message)
        parts = self.parts
        host, secure = parts.hostname or "127.0.0.1", parts.scheme == "smtps"
        port = parts.port or (465 if secure else 25)
        try:
            smtp: smtplib.SMTP
            if secure:
                smtp = smtplib.SMTP_SSL(host, port, timeout=self.timeout, context=self.tls_context)
            else:
                smtp = smtplib.SMTP(host, port, timeout=self.timeout)
            with smtp:
                smtp.ehlo()
                if not secure and smtp.has_extn("starttls"):
                    smtp.starttls(context=self.tls_context)
                    smtp.ehlo()
                if parts.username:
                    smtp.login(unquote(parts.username), unquote(parts.password or ""))
                smtp.send_message(email)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailNotSentError(type(exc).__name__) from exc
