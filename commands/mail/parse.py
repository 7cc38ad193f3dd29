"""A received e-mail as the rules read it: its subject and its text.

The text is the text/plain part when there is one, else the HTML part turned into text;
attachments are never read. Python's `email` package undoes quoted-printable and base64 and
decodes the part's charset; a charset it does not know, or bytes that are not in it, are
decoded as far as they go rather than refusing the message, since a job's failure report in
windows-1252 with one stray byte is still a failure report.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.utils import parseaddr

from bs4 import BeautifulSoup

from storage.types import storable

MAX_SUBJECT = 500
MAX_TEXT = 10_000
_BLANK_RUNS = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class Mail:
    subject: str
    text: str  # the body as text, cut to MAX_TEXT
    sender: str  # the From header's address, lower-cased; "" when there is none
    message_id: str  # "" when there is none


def parse_mail(raw: bytes) -> Mail:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    subject = _header(message, "Subject")
    return Mail(
        subject=storable(" ".join(subject.split()))[:MAX_SUBJECT],
        text=storable(_text(message))[:MAX_TEXT],
        sender=parseaddr(_header(message, "From"))[1].lower(),
        message_id=_header(message, "Message-ID").strip()[:300],
    )


def _header(message: EmailMessage, name: str) -> str:
    try:
        return str(message.get(name) or "")
    except (ValueError, IndexError):  # a header too broken for the parser to render
        raw = message.get_all(name, failobj=[])
        return str(raw[0]) if raw else ""


def _text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    content = _content(part)
    if part.get_content_subtype() == "html":
        content = BeautifulSoup(content, "html.parser").get_text("\n")
    lines = [line.rstrip() for line in content.replace("\r\n", "\n").split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def _content(part: Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        return content if isinstance(content, str) else ""
    except (LookupError, UnicodeError, ValueError):
        # An unknown charset, or bytes that are not in the one named: decoded as far as
        # they go, the rest replaced.
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            return ""
        try:
            return payload.decode(part.get_content_charset() or "utf-8", errors="replace")
        except LookupError:
            return payload.decode("utf-8", errors="replace")
