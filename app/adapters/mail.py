"""The Mailer port over SMTP (``SMTP_URL``: smtp://user:password@host:port)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from urllib.parse import urlsplit

from domain.ports import MailMessage, MailNotSentError


class SmtpMailer:
    """One SMTP connection per message: notifications are few and a connection never goes stale."""

    def __init__(self, url: str, mail_from: str, timeout: float = 10) -> None:
        self.parts = urlsplit(url)
        self.mail_from = mail_from
        self.timeout = timeout

    def send(self, message: MailMessage) -> None:
        email = EmailMessage()
        email["From"] = self.mail_from
        email["To"] = message.to
        email["Subject"] = message.subject
        for name, value in message.headers.items():
            email[name] = value
        email.set_content(message.body)
        parts = self.parts
        try:
            with smtplib.SMTP(parts.hostname or "127.0.0.1", parts.port or 25, timeout=self.timeout) as smtp:
                if parts.username:
                    smtp.login(parts.username, parts.password or "")
                smtp.send_message(email)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailNotSentError(type(exc).__name__) from exc
