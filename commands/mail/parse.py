"""A received e-mail as the rules read it: its subject and its text.

The text is the first text/plain part that is not an attachment, else the first HTML part
turned into text; attachments are never read. Python's `email` package undoes quoted-
printable and base64, and the part's charset is decoded here; a charset nobody knows, or
bytes that are not in it, are decoded as far as they go rather than refusing the message,
since a job's failure report in windows-1252 with one stray byte is still a failure report.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.utils import parseaddr

from bs4 import BeautifulSoup

from storage.types import storable

MAX_SUBJECT = 500
MAX_TEXT = 10_000
# What is read of a header or an HTML part before decoding it: decoding costs time with
# the size of what it is given, and nothing past this would be shown.
MAX_RAW_HEADER = 2_000
MAX_RAW_HTML = 200_000
_BLANK_RUNS = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class Mail:
    subject: str
    text: str  # the body as text, cut to MAX_TEXT
    sender: str  # the From header's address, lower-cased; "" when there is none
    message_id: str  # "" when there is none
    # Sent by a program on its own (an out-of-office reply, a bounce): RFC 3834.
    automatic: bool = False


def parse_mail(raw: bytes) -> Mail:
    # compat32 reads headers as they are, which is most of the time a message costs with the
    # modern policy (it parses every header it is asked for); what is used is decoded here.
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    subject = " ".join(_decoded(message.get("Subject")).split())
    return Mail(
        subject=storable(subject)[:MAX_SUBJECT],
        text=storable(_text(message))[:MAX_TEXT],
        sender=parseaddr(_decoded(message.get("From")))[1].lower(),
        message_id=storable(str(message.get("Message-ID") or "")[:300]).strip(),
        automatic=str(message.get("Auto-Submitted") or "no").strip().lower()[:20] != "no",
    )


def _decoded(value: object) -> str:
    """A header's text, its RFC 2047 encoded words (=?utf-8?q?…?=) decoded."""
    if value is None:
        return ""
    value = str(value)[:MAX_RAW_HEADER]
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, UnicodeError, ValueError, HeaderParseError):
        return str(value)


def _text(message: Message) -> str:
    part = _body(message, "plain") or _body(message, "html")
    if part is None:
        return ""
    content = _content(part)
    if part.get_content_subtype() == "html":
        content = BeautifulSoup(content[:MAX_RAW_HTML], "html.parser").get_text("\n")
    content = content[: MAX_TEXT * 2]  # its lines tidied below, then cut to MAX_TEXT
    lines = [line.rstrip() for line in content.replace("\r\n", "\n").split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def _body(message: Message, subtype: str) -> Message | None:
    """The first text/<subtype> part that is not an attachment."""
    for part in message.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        if part.get_content_maintype() == "text" and part.get_content_subtype() == subtype:
            return part
    return None


def _content(part: Message) -> str:
    # An unknown charset, or bytes that are not in the one named: decoded as far as they go,
    # the rest replaced.
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    try:
        return payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")
