"""The load generator's HTTP clients: a minimal keep-alive HTTP/1.1 client, and httpx.

The clients share the server's two cores, so what they spend is taken from the server. httpx's
AsyncClient costs about 5 ms of CPU per request here, as much as the server's own work, and its
connection pool adds a tail of its own (p99 885 ms against 199 ms for the same server and
load), so the default client writes the request and reads the `Content-Length` answer on a
plain asyncio stream, at about 0.5 ms per request. `--client httpx` measures with httpx.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
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
