"""Polls vendors' status pages and hands what they say to `commands.monitors.vendor_status`.

Each page is a due row. A poll claims it (a conditional UPDATE that must change one row),
fetches `<page>/api/v2/summary.json` with no transaction open, then records the result in one
short transaction that first checks the claim is still its own. So any number of processes
on one PostgreSQL poll each page once per period and queue each message once, and a process
that dies mid-poll only delays that page by the lease.

A page that times out, answers an error or something that is not a summary is recorded on
its row (`last_error`) and logged; it is never posted and never stops the other pages.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx

from bot.deps import Deps
from bot.tls import client_context
from commands.monitors import statuspage, vendor_status
from commands.monitors.statuspage import Summary, SummaryError
from commands.monitors.vendor_status import PageClaim
from storage.db import transaction

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 10.0  # seconds, per connect and per read
# httpx's timeout bounds each read, not the whole answer; a page trickling bytes is cut here.
FETCH_DEADLINE = 30.0
# Real summaries are tens of kB (a few hundred components at most); anything far larger is
# not a summary, and reading it whole would only cost memory.
MAX_BYTES = 5 * 1024 * 1024
# Far longer than one fetch can take (FETCH_DEADLINE), so a live poller never loses a claim.
LEASE = timedelta(seconds=120)
# Pages are fetched side by side, so one vendor that hangs until the timeout does not hold
# back the others; a handful is plenty for the few vendors a catalog names.
MAX_CONCURRENT = 4
MAX_PAGES_PER_RUN = 100
USER_AGENT = "integ-bot status poller"


class FetchError(Exception):
    """The page could not be read as a summary; the message is what `last_error` says."""


class StatusPoller:
    def __init__(
        self,
        deps: Deps,
        notify_outbox: Callable[[], None],
        worker_id: str,
        *,
        client: httpx.Client | None = None,
    ) -> None:
        self.deps = deps
        self.notify_outbox = notify_outbox
        self.worker_id = worker_id
        self._owns_client = client is None
        self.client = client or httpx.Client(
            timeout=FETCH_TIMEOUT,
            follow_redirects=True,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            verify=client_context(),
        )

    @property
    def every(self) -> timedelta:
        return timedelta(seconds=self.deps.settings.integ_status_poll_seconds)

    def run_due(self) -> int:
        """Poll every page that is due and not being polled elsewhere; how many were polled.
        Never raises: it runs on the scheduler's tick, whose other work must still happen."""
        try:
            with transaction(self.deps.sessions) as session:
                now = self.deps.clock()
                vendor_status.sync_status_pages(session, now)
                lease_now = self.deps.lease_clock(session)
                due = vendor_status.due_pages(session, now, lease_now, MAX_PAGES_PER_RUN)
        except Exception:
            log.exception("status pages: could not look for due pages")
            return 0
        if not due:
            return 0
        if len(due) == 1:
            results = [self._poll(due[0])]
        else:
            with ThreadPoolExecutor(
                max_workers=min(MAX_CONCURRENT, len(due)), thread_name_prefix="status-poll"
            ) as pool:
                results = list(pool.map(self._poll, due))
        polled = sum(1 for r in results if r is not None)
        if sum(r or 0 for r in results):
            self.notify_outbox()
        return polled

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    # -- one page ---------------------------------------------------------------------------

    def _poll(self, system_id: str) -> int | None:
        """Claim, fetch and record one page: None when someone else has it, else how many
        Slack writes were queued."""
        try:
            with transaction(self.deps.sessions) as session:
                claim = vendor_status.claim_page(
                    session,
                    system_id,
                    self.deps.clock(),
                    self.deps.lease_clock(session),
                    self.worker_id,
                    LEASE,
                )
        except Exception:
            log.exception("status page of %s: could not be claimed", system_id)
            return None
        if claim is None:
            return None
        try:
            summary = self._fetch(claim.url)
        except FetchError as exc:
            log.warning("status page of %s (%s): %s", system_id, claim.url, exc)
            self._record_error(claim, str(exc))
            return 0
        except Exception as exc:
            # Whatever else the transport raises (httpx.InvalidURL is no HTTPError).
            log.exception("status page of %s (%s): fetch failed", system_id, claim.url)
            self._record_error(claim, f"{type(exc).__name__}: {exc}")
            return 0
        try:
            with transaction(self.deps.sessions) as session:
                return vendor_status.apply_summary(
                    session, claim, summary, self.deps.clock(), self.every
                )
        except Exception as exc:
            # A bug or the database: the page is tried again next period rather than at
            # every tick, and the error is where `/integ status` shows it.
            log.exception("status page of %s: its summary could not be applied", system_id)
            self._record_error(claim, f"could not apply the summary: {type(exc).__name__}")
            return 0

    def _record_error(self, claim: PageClaim, error: str) -> None:
        try:
            with transaction(self.deps.sessions) as session:
                vendor_status.record_error(session, claim, error, self.deps.clock(), self.every)
        except Exception:
            # The claim runs out after LEASE and the page is polled again then.
            log.exception("status page of %s: the error could not be recorded", claim.system_id)

    def _fetch(self, base_url: str) -> Summary:
        url = statuspage.summary_url(base_url)
        started = time.monotonic()
        try:
            with self.client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise FetchError(f"HTTP {response.status_code} from {url}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_BYTES:
                        raise FetchError(f"the answer is larger than {MAX_BYTES // 1024} kB")
                    if time.monotonic() - started > FETCH_DEADLINE:
                        raise FetchError(f"the answer took longer than {FETCH_DEADLINE:.0f} s")
        except httpx.TimeoutException:
            raise FetchError(f"timed out after {FETCH_TIMEOUT:.0f} s") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"{type(exc).__name__}: {exc}") from None
        try:
            data = json.loads(bytes(body))
        except (ValueError, RecursionError) as exc:
            raise FetchError(f"the answer is not JSON ({exc})") from None
        try:
            return statuspage.parse_summary(data)
        except SummaryError as exc:
            raise FetchError(f"not a Statuspage summary: {exc}") from None
