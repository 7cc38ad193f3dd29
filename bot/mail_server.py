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
import hmac
import logging
import socket
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from bot import metrics
from bot.deps import Deps
from bot.settings import Settings
from commands.mail.intake import refusal, take
from storage.db import describe, transaction
from storage.write_turns import write_transaction

log = logging.getLogger(__name__)

# How long one command may wait for the database before the sender is told to try later.
STORE_TIMEOUT = 30.0
# An idle connection is dropped after this; a relay reconnects.
IDLE_TIMEOUT = 60.0
TRY_LATER = "451 4.3.0 The message could not be stored just now; try again later"


class MailHandler:
    """aiosmtpd's handler: the SMTP commands that decide anything."""

    def __init__(self, deps: Deps, domain: str, notify: Callable[[], None]) -> None:
        self.deps = deps
        self.domain = domain
        self.notify = notify
        # SQLite has one writer anyway; two threads let a RCPT check go while a message is
        # stored.
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mail-store")

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
        sender = envelope.mail_from or ""

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
        sender = envelope.mail_from or ""
        recipients = list(envelope.rcpt_tos)

        def store() -> int | None:
            with write_transaction(self.deps.sessions) as db:
                taken = take(db, data, sender, recipients, self.domain, self.deps.clock(), peer)
            return None if taken is None else len(taken)

        try:
            stored = await self._in_pool(store)
        except Exception as exc:
            metrics.MAIL.labels("failed").inc()
            log.warning(
                "mail from %r: could not be stored (%s); answered 451", sender, describe(exc)
            )
            return TRY_LATER
        metrics.MAIL.labels("duplicate" if stored is None else "stored").inc()
        self.notify()
        return "250 2.0.0 Stored"


class MailServer:
    """The listener, started and stopped with the bot (`integ-bot serve`)."""

    def __init__(self, deps: Deps, notify: Callable[[], None]) -> None:
        settings = deps.settings
        assert settings.integ_smtp_port is not None and settings.integ_mail_domain is not None
        self.handler = MailHandler(deps, settings.integ_mail_domain, notify)
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

    def stop(self) -> None:
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
