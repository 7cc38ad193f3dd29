"""The load generator's HTTP clients: a minimal keep-alive HTTP/1.1 client, and httpx.

The clients share the server's two cores, so what they spend is taken from the server. httpx's
AsyncClient costs about 5 ms of CPU per request here, as much as the server's own work, and its
connection pool adds a tail of its own (p99 885 ms against 199 ms for the same server and
load), so the default client writes the request and reads the `Content-Length` answer on a
plain asyncio stream, at about 0.5 ms per request. `--client httpx` measures with httpx.

`send_all` drives many of these connections at once, each sender sending its next request as
soon as the last is answered (a closed loop) or at a time set in advance (an open loop).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import httpx

TIMEOUT = 10.0


class BadResponse(Exception):
    """The server answered something that is not HTTP/1.1 as this client reads it."""


class Transport(Protocol):
    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """Send one POST and return (status, body)."""
        ...

    async def aclose(self) -> None: ...


class RawConnection:
    """One keep-alive connection, one request at a time; reconnects after any failure."""

    def __init__(self, url: str) -> None:
        split = urlsplit(url)
        if split.hostname is None or split.port is None:
            raise ValueError(f"need http://host:port, got {url!r}")
        self.host = split.hostname
        self.port = split.port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        return await self.request("POST", path, body, headers)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        try:
            return await asyncio.wait_for(
                self._exchange(method, path, body, headers or {}), TIMEOUT
            )
        except BaseException:
            await self.aclose()  # a half-read answer would poison the next one
            raise

    async def _exchange(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise BadResponse(f"status line {status_line!r}")
        fields = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if sep:
                fields[name.strip().lower()] = value.strip()
        if method == "HEAD":
            data = b""  # the headers describe a body that is not sent
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            data = await self._chunked()
        elif fields.get("content-length", "").isdigit():
            data = await self._reader.readexactly(int(fields["content-length"]))
        else:
            raise BadResponse("answer without Content-Length or chunked encoding")
        if fields.get("connection", "").lower() == "close":
            await self.aclose()
        return int(parts[1]), data

    async def _chunked(self) -> bytes:
        assert self._reader is not None
        chunks = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")  # no trailers expected
                return b"".join(chunks)
            chunks.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)

    async def aclose(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass


class HttpxTransport:
    """One client's view of a shared httpx.AsyncClient (which pools the connections)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        response = await self.client.post(path, content=body, headers=dict(headers))
        return response.status_code, response.content

    async def aclose(self) -> None:
        pass  # the shared client is closed by its owner


# -- many requests, from many connections ----------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Answer:
    status: int  # HTTP status, 0 when no answer
    error: str | None
    sent_at: float  # time.time()
    answered_at: float  # time.time()

    @property
    def latency_ms(self) -> float:
        return (self.answered_at - self.sent_at) * 1000


async def exchange(connection: RawConnection, request: Request, expect: int) -> Answer:
    """One request; any answer but `expect`, or none, is an error."""
    sent = time.time()
    try:
        status, answer = await connection.request(
            request.method, request.path, request.body, request.headers
        )
        error = None if status == expect else f"HTTP {status}: {answer[:120]!r}"
    except (OSError, TimeoutError, asyncio.IncompleteReadError, BadResponse) as exc:
        status, error = 0, type(exc).__name__
    return Answer(status=status, error=error, sent_at=sent, answered_at=time.time())


async def send_all(
    url: str,
    requests: Sequence[Request],
    expect: int,
    concurrency: int,
    max_seconds: float,
    at: Sequence[float] | None = None,
) -> tuple[list[Answer | None], float, bool]:
    """Every request, by the first of `concurrency` senders free, each on its own keep-alive
    connection. Without `at`, a closed loop: a sender sends its next request as soon as the
    last one is answered. With it, request i is sent `at[i]` seconds after the start (an open
    loop, as alerting systems send whether or not the bot keeps up). Returns the answers in
    request order (None: not sent, the time limit came first), the seconds taken, and
    whether the time limit stopped it."""
    answers: list[Answer | None] = [None] * len(requests)
    order = iter(range(len(requests)))
    timed_out = False
    connections = [RawConnection(url) for _ in range(concurrency)]
    started = time.monotonic()
    deadline = started + max_seconds

    async def sender(connection: RawConnection) -> None:
        nonlocal timed_out
        for index in order:
            if at is not None:
                wait = started + at[index] - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            if time.monotonic() > deadline:
                timed_out = True
                return
            answers[index] = await exchange(connection, requests[index], expect)

    try:
        await asyncio.gather(*(sender(c) for c in connections))
    finally:
        for connection in connections:
            await connection.aclose()
    return answers, time.monotonic() - started, timed_out


def error_counts(answers: Sequence[Answer | None]) -> dict[str, int]:
    """How many requests failed, by kind of failure (the HTTP status, or the exception)."""
    counted: Counter[str] = Counter()
    for answer in answers:
        if answer is None:
            counted["not sent (time limit)"] += 1
        elif answer.error:
            counted[answer.error.split(":")[0]] += 1
    return dict(counted)


def answered_with(answers: Sequence[Answer | None], status: int) -> int:
    return sum(1 for a in answers if a is not None and a.status == status)


def latencies_ms(answers: Sequence[Answer | None], status: int) -> list[float]:
    """The latencies of the requests answered `status`, sorted."""
    return sorted(a.latency_ms for a in answers if a is not None and a.status == status)
