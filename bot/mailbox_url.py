"""The mailbox INTEG_IMAP_URL names, read once with the settings (bot/workers/mailbox.py)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class MailboxUrl:
    secure: bool
    host: str
    port: int
    user: str
    password: str
    folder: str

    @classmethod
    def parse(cls, url: str) -> MailboxUrl:
        """imaps://user:password@host[:port]/Folder (imap:// without TLS, for a server on the
        same host); ValueError naming what is wrong."""
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise ValueError("its port must be a number from 1 to 65535") from None
        if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
            raise ValueError("must look like imaps://user:password@host/INBOX")
        secure = parts.scheme == "imaps"
        return cls(
            secure=secure,
            host=parts.hostname,
            port=port or (993 if secure else 143),
            user=unquote(parts.username),
            password=unquote(parts.password or ""),
            folder=unquote(parts.path.lstrip("/")) or "INBOX",
        )
