"""The SMTP listener: mail that jobs and vendors' connectors send, taken in (commands/mail).

aiosmtpd serves SMTP on its own event loop, in a thread of its own; the database work of
each command runs on a small pool beside it, never on that loop. Every recipient is checked
at RCPT, so a message nobody may send is refused (550) before its data is read, and stored
nowhere; a message is answered 250 only once it is committed, and a failure to store it is
answered 451, which tells the relay to try again later: nothing accepted is lost. Sizes are
capped (552 past INTEG_SMTP_MAX_BYTES). STARTTLS and AUTH are offered when set up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from sqlalchemy.exc import SQLAlchemyError

from bot import metrics
from bot.deps import Deps
from bot.settings import Settings
from commands.mail.intake import refusal, take
from commands.mail.parse import parse_mail
from storage.db import describe, transaction, unavailable
from storage.write_turns import write_transaction

log = logging.getLogger(__name__)

# How long one command may wait for the database before the sender is told to try later.
STORE_TIMEOUT = 30.0
# An idle connection is dropped after this; a relay reconnects.
IDLE_TIMEOUT = 60.0
TRY_LATER = "451 4.3.0 The message could not be stored just now; try again later"
# How long stopping waits for the messages being stored to be answered.
STOP_WAIT = 5.0


class MailHandler:
    """aiosmtpd's handler: the SMTP commands that decide anything."""

    def __init__(self, deps: Deps, domain: str, notify: Callable[[], None]) -> None:
        self.deps = deps
        self.domain = domain
        self.notify = notify
        # SQLite has one writer anyway; two threads let a RCPT check go while a message is
        # stored.
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mail-store")
        # Messages being stored now, which stopping waits for (MailServer.stop).
        self.in_flight = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def _in_pool(self, work: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(self._pool, work), STORE_TIMEOUT)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.deps.database.down:
            return TRY_LATER
        sender = _sender(envelope)

        def check() -> str | None:
            with transaction(self.deps.sessions) as db:
                return refusal(db, address, sender, self.domain)

        try:
            refused: str | None = await self._in_pool(check)
        except Exception as exc:  # the database, or a timeout: the relay asks again later
            log.warning("mail to %s: could not check the recipient: %s", address, describe(exc))
            return TRY_LATER
        if refused is not None:
            metrics.MAIL.labels("refused").inc()
            log.info("mail from %r to %r refused: %s", sender, address, refused)
            return refused
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        data = raw if isinstance(raw, bytes) else str(raw or "").encode()
        peer = session.peer[0] if isinstance(session.peer, tuple) else None
        sender = _sender(envelope)
        recipients = list(envelope.rcpt_tos)

        def store() -> int | None:
            mail = parse_mail(data)  # before the transaction: it takes time, writes nothing
            with write_transaction(self.deps.sessions) as db:
                now = self.deps.clock()
                taken = take(db, mail, data, sender, recipients, self.domain, now, peer)
            return None if taken is None else len(taken)

        with self._counting():
            try:
                stored = await self._in_pool(store)
            except Exception as exc:
                metrics.MAIL.labels("failed").inc()
                # The database, whatever it said: once it is put right, the retry is stored.
                if isinstance(exc, (TimeoutError, SQLAlchemyError)) or unavailable(exc):
                    log.warning("mail from %r not stored (%s): 451", sender, describe(exc))
                    return TRY_LATER
                # Sending it again would fail again: the relay is told at once, and bounces it.
                log.exception("mail from %r could not be read: 554", sender)
                return "554 5.6.0 The message could not be read; it was not stored"
        metrics.MAIL.labels("duplicate" if stored is None else "stored").inc()
        self.notify()
        return "250 2.0.0 Stored"

    @contextlib.contextmanager
    def _counting(self) -> Iterator[None]:
        with self._lock:
            self.in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1


def _sender(envelope: Envelope) -> str:
    # aiosmtpd keeps the null sender of a bounce as "<>".
    return str(envelope.mail_from or "").strip().strip("<>").lower()


class MailServer:
    """The listener, started and stopped with the bot (`integ-bot serve`)."""

    def __init__(self, deps: Deps, notify: Callable[[], None]) -> None:
        settings = deps.settings
        assert settings.integ_smtp_port is not None and settings.integ_mail_domain is not None
        self.handler = MailHandler(deps, settings.integ_mail_domain, notify)
        # aiosmtpd logs every connection and command at INFO; a relay's traffic would bury
        # the bot's own log. Its warnings and errors still show.
        logging.getLogger("mail.log").setLevel(max(logging.WARNING, log.getEffectiveLevel()))
        self.controller = Controller(
            self.handler,
            hostname=settings.integ_smtp_host,
            port=settings.integ_smtp_port,
            server_hostname=settings.integ_mail_domain,
            ready_timeout=10.0,
            **smtp_options(settings),
        )

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def start(self) -> None:
        # A port already taken is told at once: aiosmtpd would wait out its ready timeout.
        family = socket.AF_INET6 if ":" in self.controller.hostname else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((self.controller.hostname, self.controller.port))
        self.controller.start()
        log.info(
            "taking mail on %s:%s for @%s",
            self.controller.hostname,
            self.port,
            self.handler.domain,
        )

    def stop(self, timeout: float = STOP_WAIT) -> None:
        """Take no new connection, let the messages being stored be answered (within
        `timeout`), then stop."""
        server, loop = getattr(self.controller, "server", None), self.controller.loop
        if server is not None and loop.is_running():
            loop.call_soon_threadsafe(server.close)
        deadline = time.monotonic() + timeout
        while self.handler.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        try:
            self.controller.stop()
        except AssertionError:  # never started
            pass
        self.handler.close()


def smtp_options(settings: Settings) -> dict[str, Any]:
    """What aiosmtpd's SMTP takes from the settings: size, timeout, TLS and AUTH."""
    options: dict[str, Any] = {
        "data_size_limit": settings.integ_smtp_max_bytes,
        "timeout": IDLE_TIMEOUT,
        # Job reports come from one relay; one message with many recipients is rare, and a
        # loop of them is a misconfigured relay, not a reason to spend the database.
        "command_call_limit": 1000,
    }
    if settings.integ_smtp_tls_cert is not None and settings.integ_smtp_tls_key is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(settings.integ_smtp_tls_cert, settings.integ_smtp_tls_key)
        options["tls_context"] = context
    if settings.integ_smtp_user is not None and settings.integ_smtp_password is not None:
        user = settings.integ_smtp_user.encode()
        password = settings.integ_smtp_password.encode()

        def authenticate(
            server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
        ) -> AuthResult:
            ok = isinstance(data, LoginPassword) and (
                hmac.compare_digest(data.login, user) & hmac.compare_digest(data.password, password)
            )
            return AuthResult(success=bool(ok), handled=False)

        options["authenticator"] = authenticate
        options["auth_required"] = True
        # Sent in the clear only when no certificate is given (a relay on the same host).
        options["auth_require_tls"] = "tls_context" in options
    return options
