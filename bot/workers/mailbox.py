"""The IMAP poller: for sites whose mail cannot reach the bot's SMTP listener, a mailbox that
the integrations' addresses are delivered to, read on a schedule (INTEG_IMAP_URL).

Each message is read, judged by the same rules as one taken over SMTP (commands/mail), and
moved to the done folder only once what it did is committed. A message that cannot be
stored stays where it is and is read again at the next poll; a message moved late (the move
failed after the commit) is read again too, and its Message-ID keeps it from counting twice.
A message no integration takes (an unknown address, a sender not allowed) is logged and moved
to the done folder as well, so that it is not read again every minute.
"""

from __future__ import annotations

import email
import email.policy
import imaplib
import logging
import ssl
from collections.abc import Callable
from email.utils import getaddresses, parseaddr

from sqlalchemy.exc import SQLAlchemyError

from bot import metrics
from bot.deps import Deps
from bot.mailbox_url import MailboxUrl
from commands.mail.intake import parse_address, refusal, take
from commands.mail.parse import parse_mail
from storage.db import describe, unavailable
from storage.write_turns import write_transaction

log = logging.getLogger(__name__)

TIMEOUT = 30.0  # seconds any one IMAP command may take
BATCH = 100  # messages a poll reads at most; the rest wait for the next poll
_TO_HEADERS = ("Delivered-To", "X-Original-To", "To", "Cc")


class MailboxPoller:
    def __init__(self, deps: Deps, notify: Callable[[], None]) -> None:
        settings = deps.settings
        assert settings.integ_imap_url is not None and settings.integ_mail_domain is not None
        self.deps = deps
        self.notify = notify
        self.mailbox = MailboxUrl.parse(settings.integ_imap_url)  # checked with the settings
        self.done = settings.integ_imap_done_folder
        self.domain = settings.integ_mail_domain

    def run_due(self) -> int:
        """Read what the mailbox holds; how many messages were stored. Never raises: a
        mailbox that cannot be read now is read at the next poll."""
        if self.deps.database.down:
            return 0
        try:
            imap = self._connect()
        except (OSError, imaplib.IMAP4.error) as exc:
            log.warning("mailbox %s: cannot be read just now: %s", self.mailbox.host, exc)
            return 0
        try:
            stored = self._poll(imap)
        except (OSError, imaplib.IMAP4.error) as exc:
            log.warning("mailbox %s: reading it failed part way: %s", self.mailbox.host, exc)
            stored = 0
        finally:
            try:
                imap.logout()
            except (OSError, imaplib.IMAP4.error):
                pass
        if stored:
            self.notify()
        return stored

    def _connect(self) -> imaplib.IMAP4:
        box = self.mailbox
        imap: imaplib.IMAP4
        if box.secure:
            context = ssl.create_default_context()
            imap = imaplib.IMAP4_SSL(box.host, box.port, ssl_context=context, timeout=TIMEOUT)
        else:
            imap = imaplib.IMAP4(box.host, box.port, timeout=TIMEOUT)
        imap.login(box.user, box.password)
        status, _ = imap.select(_quoted(box.folder))
        if status != "OK":
            raise imaplib.IMAP4.error(f"no folder {box.folder!r}")
        # Made once; "already exists" is the usual answer.
        imap.create(_quoted(self.done))
        return imap

    def _poll(self, imap: imaplib.IMAP4) -> int:
        status, data = imap.uid("SEARCH", "ALL")
        found = data[0] if status == "OK" and data and isinstance(data[0], bytes) else b""
        uids = [uid.decode() for uid in found.split()[:BATCH]]
        stored = 0
        for uid in uids:
            status, parts = imap.uid("FETCH", uid, "(RFC822)")
            raw = next((p[1] for p in parts or [] if isinstance(p, tuple)), None)
            if status != "OK" or not isinstance(raw, bytes):
                continue
            result = self._take(raw)
            metrics.MAIL.labels(result).inc()
            if result == "failed":
                continue  # the database: stays in the folder, read again at the next poll
            stored += result == "stored"
            self._file(imap, uid)
        return stored

    def _take(self, raw: bytes) -> str:
        """stored, duplicate, refused (no integration takes it), unreadable (it never will
        be: filed away all the same, logged) or failed (the database: read it again)."""
        try:
            message = email.message_from_bytes(raw, policy=email.policy.compat32)
            sender = parseaddr(str(message.get("Return-Path") or message.get("From") or ""))[1]
            headers = [str(v) for name in _TO_HEADERS for v in message.get_all(name, [])]
            recipients = list(
                dict.fromkeys(
                    address
                    for _, address in getaddresses(headers)
                    if parse_address(address, self.domain) is not None
                )
            )
            mail = parse_mail(raw)
        except Exception:
            log.exception("mailbox: a message could not be read; filed away unread")
            return "unreadable"
        sender = sender.lower()
        try:
            with write_transaction(self.deps.sessions) as session:
                taken = [r for r in recipients if refusal(session, r, sender, self.domain) is None]
                if not taken:
                    log.info(
                        "mailbox: a message from %r to %s is taken by no integration",
                        sender,
                        recipients or "no address here",
                    )
                    return "refused"
                now = self.deps.clock()
                done = take(session, mail, raw, sender, taken, self.domain, now, peer="imap")
        except Exception as exc:
            if isinstance(exc, SQLAlchemyError) or unavailable(exc):
                log.warning("mailbox: a message from %r not stored (%s)", sender, describe(exc))
                return "failed"
            log.exception("mailbox: a message from %r could not be taken; filed away", sender)
            return "unreadable"
        return "duplicate" if done is None else "stored"

    def _file(self, imap: imaplib.IMAP4, uid: str) -> None:
        """Into the done folder; a message that cannot be moved is read again at the next
        poll, and its claim keeps it from counting twice."""
        try:
            if "MOVE" in imap.capabilities:
                status, _ = imap.uid("MOVE", uid, _quoted(self.done))
                if status == "OK":
                    return
            status, answer = imap.uid("COPY", uid, _quoted(self.done))
            if status != "OK":
                log.warning("mailbox: message %s not filed in %r: %s", uid, self.done, answer)
                return
            imap.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
            if "UIDPLUS" in imap.capabilities:
                imap.uid("EXPUNGE", uid)  # this message only, not others flagged deleted
            else:
                imap.expunge()
        except (OSError, imaplib.IMAP4.error) as exc:
            log.warning("mailbox: message %s not filed in %r: %s", uid, self.done, exc)


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
