"""uvicorn's HTTP/1.1 connection (httptools), with the two limits it leaves out.

Uvicorn times out a connection only once it has answered a request on it (keep-alive), and
with httptools, the parser it picks when installed (it halves the CPU a request costs),
nothing bounds a request's head: a client that opens a connection and sends nothing, or
sends header bytes slowly or without end, holds one of `LIMIT_CONCURRENCY` connections, and
memory, for as long as it likes. h11's `max_incomplete_event_size` covers h11 alone. So:

- a request's head (request line and headers) must arrive within HEAD_SECONDS of the
  connection opening or of its first byte; else 408, or a bare close when nothing came;
- and within MAX_HEAD_BYTES; else 431.

Both count per request, so a kept-alive connection is checked again for each request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = logging.getLogger(__name__)

# Slack, jobs and alerting servers send a request's head in one packet; ten seconds covers
# the slowest link, and bounds how long a silent connection counts against the limit.
# Read at each connection, so a test can shorten it.
HEAD_SECONDS: float = 10.0
# A request line and headers from Slack are under 4 kB; nginx allows 8 kB a line and 32 kB
# in all by default, h11 16 kB. Beyond this, a head is an attack or a bug.
MAX_HEAD_BYTES: Final = 64 * 1024


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_parsed = 0  # bytes of request line and headers parsed so far
        self._head_received = 0  # bytes of chunks that ended inside the head
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Still inside a head once this chunk is parsed: httptools keeps a header it has not
        # seen the end of in a buffer of its own, which the callbacks below never see, so
        # the chunk counts whole. (One that also ended a pipelined request counts that too.)
        if self._head_timer is not None and not self._refused:
            self._head_received += len(data)
            self._check_head_size(self._head_received)

    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        if self._head_timer is None:  # the first request's clock started with the connection
            self._start_head_clock()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_parsed += len(url)
        self._check_head_size(self._head_parsed)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._head_parsed += len(name) + len(value) + 4  # ": " and CRLF
        self._check_head_size(self._head_parsed)

    # Once refused, the connection is closing: what httptools still parses from the chunk
    # at hand must not start a request.
    def on_headers_complete(self) -> None:
        self._stop_head_clock()
        if not self._refused:
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def _check_head_size(self, size: int) -> None:
        if size > MAX_HEAD_BYTES and not self._refused:
            self._refuse(431, f"request head over {MAX_HEAD_BYTES // 1024} KiB")

    def _start_head_clock(self) -> None:
        self._head_parsed = self._head_received = 0
        self._head_timer = self.loop.call_later(HEAD_SECONDS, self._head_too_slow)

    def _stop_head_clock(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._head_parsed = self._head_received = 0

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request, whose head uvicorn stops reading until the one before it
            # is answered: its time starts again then.
            self._head_timer = self.loop.call_later(HEAD_SECONDS, self._head_too_slow)
            return
        if self._head_parsed == self._head_received == 0:
            # Nothing sent at all (a client that opened a connection ahead of need, or
            # that never meant to send): no request to answer.
            self.transport.close()
            return
        self._refuse(408, f"request head not received within {HEAD_SECONDS:g} s")

    def _refuse(self, status: int, reason: str) -> None:
        self._refused = True
        self._stop_head_clock()
        log.debug("closing a connection from %s: %s", self.client, reason)
        answering = self.cycle is not None and not self.cycle.response_complete
        if not answering:  # else an answer would interleave with the one being written
            message = (reason + "\n").encode("ascii")
            head = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:
                head += [name, b": ", value, b"\r\n"]
            head += [
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: " + str(len(message)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
            ]
            self.transport.write(b"".join(head) + message)
        self.transport.close()
