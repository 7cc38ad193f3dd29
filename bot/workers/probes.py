"""Runs the HTTP probes: claims each due probe, checks it with httpx in a bounded
thread pool and records the result; `commands.monitors.probes` decides what the result means.

It runs on the scheduler's thread and its own pool, never on the HTTP server's event loop,
so a probe that hangs until its timeout delays nothing but its own pool slot. Each probe is
claimed, checked and recorded in its own pool task, each step in its own short transaction:
no transaction is held open across a request, and a claim's lease starts when its check
does, not while it waits in the queue behind slow ones.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx
from prometheus_client import Counter, Histogram
from sqlalchemy.exc import OperationalError

from bot.deps import Deps
from bot.tls import client_context
from commands.monitors.probes import (
    CheckOutcome,
    ClaimedProbe,
    Recorded,
    claim_probe,
    due_probes,
    excerpt,
    judge_response,
    record_check,
    status_error,
    sync_probes,
)
from storage.db import transaction

log = logging.getLogger(__name__)

USER_AGENT = "integ-bot-probe/1.0"
# Enough to find an expected text in any health page; a probe never reads further, so a
# misconfigured URL pointing at a large download costs a megabyte, not the download.
MAX_BODY = 1024 * 1024
# Only this much of an error answer is read when no text is expected: it is shown, cut to a
# line, and never searched.
EXCERPT_BYTES = 4096
RECORD_TRIES = 3

# Metrics live beside the one runner that moves them, as the outbox worker's do.
PROBE_CHECKS = Counter(
    "integ_probe_checks_total", "HTTP probe checks, by result (ok, failed)", ["result"]
)
PROBE_LATENCY = Histogram(
    "integ_probe_latency_seconds",
    "Time for a probed endpoint to answer (successful checks)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PROBE_ALERTS = Counter(
    "integ_probe_alert_events_total",
    "Probe alert events that changed an alert, by status (firing, resolved)",
    ["status"],
)


class ProbeRunner:
    def __init__(
        self,
        deps: Deps,
        notify_outbox: Callable[[], None],
        worker_id: str,
        *,
        max_workers: int = 8,
        client: httpx.Client | None = None,
    ) -> None:
        self.deps = deps
        self.notify_outbox = notify_outbox
        self.worker_id = worker_id
        self.max_workers = max_workers
        self._own_client = client is None
        self.client = client if client is not None else build_client()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="probe")
        # run_due from two threads at once would only claim the same rows against itself;
        # the scheduler already runs it one at a time, this keeps direct callers honest.
        self._running = threading.Lock()

    def run_due(self) -> int:
        """Sync the probe rows with the catalog, check every due probe and return how many
        were checked (and recorded) by this runner."""
        with self._running:
            now = self.deps.clock()
            with transaction(self.deps.sessions) as session:
                sync_probes(session, now)
                candidates = due_probes(session, now, self.deps.lease_clock(session))
            futures: list[Future[bool]] = [
                self._pool.submit(self._run_one, ident) for ident in candidates
            ]
            checked = 0
            for ident, future in zip(candidates, futures, strict=True):
                try:
                    checked += future.result()
                except Exception:
                    # A bug or the database: the claim expires after its lease and the probe
                    # is checked again then; the others go on.
                    log.exception("probe of %s failed to run", ident)
            return checked

    def close(self) -> None:
        # Not waiting for a probe in flight (up to its timeout): stopping must fit in Docker's
        # 10 s, and its claim's lease runs out so that the next start checks it again.
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._own_client:
            self.client.close()

    # -- one probe ----------------------------------------------------------------------------

    def _run_one(self, integration_id: str) -> bool:
        started = self.deps.clock()
        with transaction(self.deps.sessions) as session:
            lease_now = self.deps.lease_clock(session)
            probe = claim_probe(session, integration_id, self.worker_id, started, lease_now)
        if probe is None:
            return False  # another worker has it, or it is no longer due
        outcome = self.check(probe)
        PROBE_CHECKS.labels("ok" if outcome.ok else "failed").inc()
        if outcome.ok and outcome.latency_ms is not None:
            PROBE_LATENCY.observe(outcome.latency_ms / 1000)
        recorded = self._record(probe, outcome, started)
        if recorded is None:
            log.warning(
                "probe of %s: the claim expired before the result was recorded; "
                "the check made by whoever took it over counts",
                integration_id,
            )
            return False
        if recorded.alert_changed:
            PROBE_ALERTS.labels("firing" if not outcome.ok else "resolved").inc()
            # Committed: wake the outbox now, so the post does not wait for its next poll.
            self.notify_outbox()
        return True

    def _record(
        self, probe: ClaimedProbe, outcome: CheckOutcome, checked_at: datetime
    ) -> Recorded | None:
        fallback = self.deps.settings.integ_fallback_channel
        for attempt in range(1, RECORD_TRIES + 1):
            try:
                with transaction(self.deps.sessions) as session:
                    return record_check(
                        session,
                        probe,
                        outcome,
                        self.worker_id,
                        checked_at,
                        self.deps.clock(),
                        fallback,
                    )
            except OperationalError:
                # A lock timeout or a dropped connection: the check was made and is worth
                # keeping; losing it would re-check the probe once the lease is over.
                if attempt == RECORD_TRIES:
                    raise
                log.warning("probe of %s: recording failed, retrying", probe.integration_id)
                time.sleep(0.2 * attempt)
        return None  # unreachable: the last attempt returns or raises

    # -- the request ---------------------------------------------------------------------------

    def check(self, probe: ClaimedProbe) -> CheckOutcome:
        """Make the probe's request and say how it went; never raises for what the network
        or the server does."""
        spec = probe.spec
        timeout = probe.timeout.total_seconds()
        # A probe that expects a redirect must see it rather than where it leads.
        follow = spec.expect_status is None or not 300 <= spec.expect_status < 400
        started = time.monotonic()
        try:
            with self.client.stream(
                "GET", spec.url, timeout=timeout, follow_redirects=follow
            ) as response:
                status = response.status_code
                body: str | None = None
                if spec.expect_text is not None:
                    body = _read_text(response, MAX_BODY, started + timeout)
                elif status_error(spec, status) is not None:
                    body = _read_text(response, EXCERPT_BYTES, started + timeout)
        except _Overrun:
            return CheckOutcome(
                ok=False,
                latency_ms=_ms_since(started),
                error=f"timed out after {spec.timeout}: {spec.url} did not finish answering",
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            failure = describe_error(exc, spec.url, spec.timeout)
            return CheckOutcome(ok=False, latency_ms=_ms_since(started), error=failure)
        latency = _ms_since(started)
        error = judge_response(spec, status, body)
        if error is None:
            return CheckOutcome(ok=True, latency_ms=latency, status_code=status)
        return CheckOutcome(
            ok=False,
            latency_ms=latency,
            status_code=status,
            error=error,
            excerpt=excerpt(body) if body else None,
        )


def build_client() -> httpx.Client:
    return httpx.Client(
        headers={"User-Agent": USER_AGENT},
        # No connection reuse: every check resolves the name, connects and shakes hands
        # afresh, so an expired certificate or a DNS change shows on the next check instead
        # of hiding behind a kept-alive connection. The pool bounds concurrency, not this.
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
        # Nor cookies: a session cookie from one check must not vouch for the next.
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        max_redirects=5,
        verify=client_context(),
    )


class _Overrun(Exception):
    """The whole answer took longer than the probe's timeout (each read alone did not)."""


def _read_text(response: httpx.Response, limit: int, deadline: float) -> str:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
        if time.monotonic() > deadline:
            raise _Overrun
    raw = b"".join(chunks)[:limit]
    try:
        return raw.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return raw.decode("utf-8", errors="replace")


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def describe_error(exc: httpx.HTTPError | httpx.InvalidURL, url: str, timeout: str) -> str:
    """The cause of a failed request in plain words: timeout, TLS, DNS, refused, …"""
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL:
        return f"{url} is not a URL that can be requested: {_first_line(str(exc))}"
    host = target.host
    where = f"{host}:{target.port}" if target.port else host
    if isinstance(exc, httpx.ConnectTimeout):
        return f"timed out after {timeout} connecting to {where} ({url})"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {timeout} waiting for {url} to answer"
    if isinstance(exc, httpx.TooManyRedirects):
        return f"too many redirects from {url}"
    causes = list(_causes(exc))
    reason = _first_line(str(exc)) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        tls = next((c for c in causes if isinstance(c, ssl.SSLError)), None)
        if tls is not None or "SSL" in reason or "CERTIFICATE" in reason:
            detail = getattr(tls, "verify_message", None) or getattr(tls, "reason", None) or reason
            return f"TLS failure with {where}: {_first_line(str(detail))} ({url})"
        if any(isinstance(c, socket.gaierror) for c in causes) or "name resolution" in reason:
            return f"DNS failure: {host} could not be resolved ({url})"
        if any(isinstance(c, ConnectionRefusedError) for c in causes) or "refused" in reason:
            return f"connection refused by {where} ({url})"
        return f"could not connect to {where}: {reason} ({url})"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return f"the connection to {where} broke off: {reason} ({url})"
    return f"request to {url} failed: {reason}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what it was raised from, and any exception in their arguments:
    httpx wraps httpcore's error, which wraps (or carries) the socket's."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [c for c in (current.__cause__, current.__context__) if c is not None]
        todo += [a for a in current.args if isinstance(a, BaseException)]


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""
