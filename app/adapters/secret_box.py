"""Secrets kept encrypted at rest (Fernet: AES-128-CBC + HMAC-SHA256) with a key from settings.

The key is ``WEBHOOK_SECRET_KEY`` (``Fernet.generate_key()``; several, comma-separated, to
rotate: the first encrypts, any decrypts). Without it a key file under ``var/`` is made once,
for development: every process of one deployment must share the key, so set it in production.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet

from app.config import ROOT

log = logging.getLogger(__name__)
DEV_KEY_FILE = ROOT / "var" / "webhook-secret.key"


def _dev_key(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(Fernet.generate_key().decode())
    log.warning("WEBHOOK_SECRET_KEY is unset: made a development key in %s", path)
    return path.read_text().strip()


class SecretBox:
    def __init__(self, keys: str | None, dev_key_file: Path = DEV_KEY_FILE) -> None:
        material = keys or _dev_key(dev_key_file)
        self.fernet = MultiFernet(
            [Fernet(key.strip().encode()) for key in material.split(",") if key.strip()]
        )

    def seal(self, secret: str) -> str:
        return self.fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        return self.fernet.decrypt(sealed.encode()).decode()
