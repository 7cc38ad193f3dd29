"""A small fake of Slack's Socket Mode WebSocket server, for tests.

Slack's side of Socket Mode, as its documentation describes it: the app calls
``apps.connections.open`` with its app-level token (``xapp-``) and gets a ``wss://`` URL; it
opens a WebSocket there and Slack greets it with a ``hello``; Slack then sends *envelopes*,
each of which the app must acknowledge within 3 seconds by sending back
``{"envelope_id": ..., "payload": {...}}`` (``payload`` only when the envelope
``accepts_response_payload``; for a slash command it is what an HTTP response body would be).
Slack refreshes connections: it sends ``{"type": "disconnect", "reason": ...}`` and expects the
app to open a new connection (with a new URL), and it may close a connection at any time.
A connection can end here the three ways one ends in life: ``close`` (a close frame, then the
socket), ``drop`` (the socket alone, as when the other end goes away) and ``silence`` (nothing
at all: a network path that died, noticed only by the client's ping timeout).

    with FakeSlack() as slack, FakeSocketMode() as sockets:
        sockets.attach(slack)          # apps.connections.open now answers sockets.open_url()
        ...start the app with SLACK_API_URL=slack.url and an xapp- token...
        sockets.wait_for_connections(1)
        envelope_id = sockets.send_envelope("slash_commands", {...})
        ack = sockets.wait_for_ack(envelope_id)
        assert ack.seconds < 3 and ack.payload["text"]

Plain ``ws://`` on 127.0.0.1 and a free port, served from daemon threads; the WebSocket framing
(RFC 6455) is written here with the standard library: the upgrade handshake, text, close,
ping and pong frames, client frames masked and server frames not. Each URL carries a ticket of
its own, so a test can tell that each connection was opened with a fresh URL, and a ticket
this server never handed out is refused with 401.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

JSON = dict[str, Any]

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


@dataclass(frozen=True)
class Ack:
    """The app's acknowledgement of one envelope."""

    envelope_id: str
    payload: JSON | None  # None when the app sent none
    connection: int  # index in FakeSocketMode.connections of the connection it came on
    sent: float  # time.monotonic() when the envelope was sent
    received: float  # time.monotonic() when the acknowledgement arrived

    @property
    def seconds(self) -> float:
        """How long the app took to acknowledge: Slack allows 3 seconds."""
        return self.received - self.sent


@dataclass
class Connection:
    """One WebSocket connection the app opened; what tests inspect of it."""

    index: int
    ticket: str
    opened: float  # time.monotonic()
    closed: float | None = None
    # "client", "server" (a close frame), "dropped" (no close frame), "eof", or "silenced"
    # (no close frame and no end of stream: the fake stopped answering; see silence())
    closed_by: str = ""
    close_code: int | None = None
    hello: JSON | None = None
    received: list[JSON] = field(default_factory=list)  # every text frame, parsed
    pings: int = 0  # ping frames the app sent (answered with pongs)
    pongs: int = 0  # pong frames the app sent
    errors: list[str] = field(default_factory=list)  # protocol faults of the client

    @property
    def open(self) -> bool:
        return self.closed is None


class _Link:
    """The socket behind a Connection, with a lock so frames are never interleaved."""

    def __init__(self, sock: socket.socket, info: Connection) -> None:
        self.sock = sock
        self.info = info
        self.send_lock = threading.Lock()
        self.silenced = False  # what the client sends is read and thrown away, unanswered

    def send(self, opcode: int, data: bytes) -> None:
        with self.send_lock:
            self.sock.sendall(_frame(opcode, data))

    def send_json(self, message: JSON) -> None:
        self.send(OP_TEXT, json.dumps(message).encode())


class FakeSocketMode:
    """Slack's Socket Mode server on 127.0.0.1, on a free port."""

    def __init__(self, *, app_id: str = "A111", clock: Callable[[], float] = time.monotonic):
        self.app_id = app_id
        self.clock = clock
        self._cond = threading.Condition()
        self._tickets: dict[str, int] = {}  # ticket -> times it was used to connect
        self._ticket_seq = itertools.count(1)
        self._connections: list[Connection] = []
        self._links: dict[int, _Link] = {}
        self._silenced: dict[int, _Link] = {}  # sockets still open, no longer answering
        self._sent: dict[str, tuple[float, int]] = {}  # envelope_id -> (sent, connection)
        self._acks: list[Ack] = []
        self._refused: list[str] = []  # paths of upgrade requests refused
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeSocketMode:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.05)
        self._thread = threading.Thread(target=self._accept, name="fake-socket-mode", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server.close()
        self._server = None
        with self._cond:
            links = list(self._links.values()) + list(self._silenced.values())
        for link in links:
            self._shut(link, "dropped")

    def __enter__(self) -> FakeSocketMode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def attach(self, slack: Any) -> None:
        """Make a FakeSlack answer ``apps.connections.open`` with a URL of this server."""
        slack.socket_mode_url = self.open_url

    # -- what apps.connections.open hands out ------------------------------------------------

    def open_url(self) -> str:
        """A new URL to connect to, with a ticket of its own, shaped like Slack's
        (``wss://wss-primary.slack.com/link/?ticket=…&app_id=…``) but ``ws://`` on loopback."""
        if self._server is None:
            raise RuntimeError("FakeSocketMode is not started; use it as a context manager")
        host, port = self._server.getsockname()[:2]
        ticket = f"{next(self._ticket_seq)}-{uuid.uuid4().hex[:12]}"
        with self._cond:
            self._tickets[ticket] = 0
        return f"ws://{host}:{port}/link/?ticket={ticket}&app_id={self.app_id}"

    # -- inspection --------------------------------------------------------------------------

    @property
    def connections(self) -> list[Connection]:
        """Every connection opened so far, oldest first (the objects, updated as they go)."""
        with self._cond:
            return list(self._connections)

    @property
    def open_connections(self) -> list[Connection]:
        return [c for c in self.connections if c.open]

    @property
    def acks(self) -> list[Ack]:
        with self._cond:
            return list(self._acks)

    @property
    def refused(self) -> list[str]:
        """The paths of WebSocket upgrades refused (an unknown ticket, a bad handshake)."""
        with self._cond:
            return list(self._refused)

    def wait_for_connections(self, count: int = 1, timeout: float = 5.0) -> list[Connection]:
        """Wait until ``count`` connections were opened and greeted with ``hello``, and the
        newest is still open; return them all."""

        def ready() -> bool:
            greeted = [c for c in self._connections if c.hello is not None]
            return len(greeted) >= count and greeted[-1].open

        self._wait(ready, timeout, lambda: f"{len(self._connections)}/{count} connections")
        return self.connections

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> Ack:
        found: list[Ack] = []

        def acked() -> bool:
            found[:] = [a for a in self._acks if a.envelope_id == envelope_id]
            return bool(found)

        self._wait(acked, timeout, lambda: f"no ack of envelope {envelope_id}")
        return found[0]

    def wait_for_closed(self, connection: Connection, timeout: float = 5.0) -> Connection:
        self._wait(lambda: not connection.open, timeout, lambda: "connection still open")
        return connection

    def _wait(self, done: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"after {timeout}s: {what()}")
                self._cond.wait(left)

    # -- what Slack sends --------------------------------------------------------------------

    def send_envelope(
        self,
        envelope_type: str,
        payload: JSON,
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
        envelope_id: str | None = None,
    ) -> str:
        """Send an envelope on the newest open connection; its envelope_id.

        ``envelope_type`` is ``slash_commands``, ``interactive`` or ``events_api``.
        ``accepts_response_payload`` defaults to true for slash commands only (interactive
        payloads that take a response, such as a view_submission, set it). ``events_api``
        envelopes carry ``retry_attempt`` and ``retry_reason``, as Slack's do.
        """
        envelope_id = envelope_id or str(uuid.uuid4())
        if accepts_response_payload is None:
            accepts_response_payload = envelope_type == "slash_commands"
        envelope: JSON = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": envelope_type,
            "accepts_response_payload": accepts_response_payload,
        }
        if envelope_type == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason
        link = self._newest_link()
        with self._cond:
            self._sent[envelope_id] = (self.clock(), link.info.index)
        link.send_json(envelope)
        return envelope_id

    def send_disconnect(self, reason: str = "refresh_requested") -> Connection:
        """Tell the app on the newest open connection to reconnect (``refresh_requested``;
        ``warning`` comes about 10 s before; ``link_disabled`` when Socket Mode is turned
        off). The connection stays open: Slack closes it some time later (``close``)."""
        link = self._newest_link()
        link.send_json(
            {
                "type": "disconnect",
                "reason": reason,
                "debug_info": {"host": f"applink-fake-{link.info.index}"},
            }
        )
        return link.info

    def close(self, connection: Connection | None = None, code: int = 1001) -> Connection:
        """Close a connection (the newest open one by default) the orderly way: a close frame
        with ``code``, then the socket. A connection already closed (the app may close the
        old one itself after a refresh) is left as it is."""
        if connection is None:
            link = self._newest_link()
        else:
            with self._cond:
                found = self._links.get(connection.index)
            if found is None:
                return connection
            link = found
        try:
            link.send(OP_CLOSE, struct.pack("!H", code))
        except OSError:
            pass
        self._shut(link, "server", code)
        return link.info

    def drop(self, connection: Connection | None = None) -> Connection:
        """Drop a connection without a close frame, as a network failure would."""
        link = self._link(connection)
        self._shut(link, "dropped")
        return link.info

    def silence(self, connection: Connection | None = None) -> Connection:
        """Let a connection (the newest open one by default) go dead without a trace, as when
        a NAT or firewall on the way forgets it or a network path fails: no close frame and
        no end of stream (no FIN, no RST), the socket stays open, and from now on whatever
        the client sends is read and thrown away: its pings get no pong, its acks count for
        nothing, and nothing more is sent on it. Only the client's own ping/pong timeout can
        tell. Envelopes go to the newest connection still answering; the socket is closed
        when the client closes its end, or when this server stops."""
        link = self._link(connection)
        with self._cond:
            if self._links.pop(link.info.index, None) is not None:
                link.silenced = True
                self._silenced[link.info.index] = link
                link.info.closed = self.clock()
                link.info.closed_by = "silenced"
                self._cond.notify_all()
        return link.info

    def ping(self, connection: Connection | None = None, data: bytes = b"fake-ping") -> None:
        self._link(connection).send(OP_PING, data)

    def _newest_link(self) -> _Link:
        with self._cond:
            open_links = [self._links[c.index] for c in self._connections if c.index in self._links]
        if not open_links:
            raise RuntimeError("no open Socket Mode connection")
        return open_links[-1]

    def _link(self, connection: Connection | None) -> _Link:
        if connection is None:
            return self._newest_link()
        with self._cond:
            link = self._links.get(connection.index)
        if link is None:
            raise RuntimeError(f"connection {connection.index} is not open")
        return link

    def _shut(self, link: _Link, how: str, code: int | None = None) -> None:
        with self._cond:
            was_open = self._links.pop(link.info.index, None) is not None
            was_silenced = self._silenced.pop(link.info.index, None) is not None
            if not (was_open or was_silenced):
                return
            if was_open:  # a silenced connection counts as closed since silence()
                link.info.closed = self.clock()
                link.info.closed_by = how
                link.info.close_code = code
                self._cond.notify_all()
        try:
            link.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        link.sock.close()

    # -- the server (daemon threads) ---------------------------------------------------------

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stopping.is_set():
            try:
                sock, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(
                target=self._serve, args=(sock,), name="fake-socket-mode-conn", daemon=True
            ).start()

    def _serve(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)
        reader = _Reader(sock)
        link = self._handshake(sock, reader)
        if link is None:
            return
        try:
            self._receive(link, reader)
        except (OSError, ConnectionError):
            pass
        self._shut(link, "eof")

    def _handshake(self, sock: socket.socket, reader: _Reader) -> _Link | None:
        try:
            head = reader.until(b"\r\n\r\n", limit=16384).decode("latin-1")
        except (OSError, ConnectionError):
            sock.close()
            return None
        request_line, *header_lines = head.split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        method, _, rest = request_line.partition(" ")
        path = rest.rsplit(" ", 1)[0]
        split = urlsplit(path)
        ticket = (parse_qs(split.query).get("ticket") or [""])[0]
        key = headers.get("sec-websocket-key", "")
        upgrade = headers.get("upgrade", "").lower() == "websocket"
        with self._cond:
            known = ticket in self._tickets
            if known:
                self._tickets[ticket] += 1
        if method != "GET" or split.path.rstrip("/") != "/link" or not upgrade or not key:
            return self._refuse(sock, path, "400 Bad Request")
        if not known:
            return self._refuse(sock, path, "401 Unauthorized")
        accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        with self._cond:
            info = Connection(index=len(self._connections), ticket=ticket, opened=self.clock())
            link = _Link(sock, info)
            self._connections.append(info)
            self._links[info.index] = link
            open_count = len(self._links)
        hello = {
            "type": "hello",
            "num_connections": open_count,
            "debug_info": {
                "host": f"applink-fake-{info.index}",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.app_id},
        }
        try:
            link.send_json(hello)
        except OSError:
            self._shut(link, "eof")
            return None
        with self._cond:
            info.hello = hello
            self._cond.notify_all()
        return link

    def _refuse(self, sock: socket.socket, path: str, status: str) -> None:
        with self._cond:
            self._refused.append(path)
            self._cond.notify_all()
        try:
            sock.sendall(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode())
        finally:
            sock.close()

    def _receive(self, link: _Link, reader: _Reader) -> None:
        info = link.info
        message = b""
        message_opcode: int | None = None
        while True:
            fin, opcode, masked, data = _read_frame(reader)
            if link.silenced:
                continue  # lost on the way: no pong, no ack, no answer to a close frame
            if not masked:
                info.errors.append(f"an unmasked frame (opcode {opcode}) from the client")
            if opcode == OP_PING:
                info.pings += 1
                link.send(OP_PONG, data)
            elif opcode == OP_PONG:
                info.pongs += 1
            elif opcode == OP_CLOSE:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                try:
                    link.send(OP_CLOSE, data[:2])
                except OSError:
                    pass
                self._shut(link, "client", code)
                return
            elif opcode in (OP_TEXT, OP_BINARY, OP_CONTINUATION):
                if opcode != OP_CONTINUATION:
                    message_opcode, message = opcode, b""
                message += data
                if fin and message_opcode == OP_TEXT:
                    self._on_text(info, message)
            else:
                info.errors.append(f"an unknown opcode {opcode}")

    def _on_text(self, info: Connection, raw: bytes) -> None:
        now = self.clock()
        try:
            message = json.loads(raw)
        except ValueError:
            info.errors.append(f"not JSON: {raw[:200]!r}")
            return
        if not isinstance(message, dict):
            info.errors.append(f"not a JSON object: {raw[:200]!r}")
            return
        with self._cond:
            info.received.append(message)
            envelope_id = message.get("envelope_id")
            if isinstance(envelope_id, str):
                sent, _ = self._sent.get(envelope_id, (now, info.index))
                payload = message.get("payload")
                self._acks.append(
                    Ack(
                        envelope_id=envelope_id,
                        payload=payload if isinstance(payload, dict) else None,
                        connection=info.index,
                        sent=sent,
                        received=now,
                    )
                )
            self._cond.notify_all()


# -- RFC 6455 framing ----------------------------------------------------------------------------


class _Reader:
    """Exact reads from a socket; ConnectionError at end of stream."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("end of stream")
        self.buffer += chunk

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def until(self, marker: bytes, limit: int) -> bytes:
        while marker not in self.buffer:
            if len(self.buffer) > limit:
                raise ConnectionError("header too long")
            self._fill()
        head, _, self.buffer = self.buffer.partition(marker)
        return head


def _read_frame(reader: _Reader) -> tuple[bool, int, bool, bytes]:
    """One frame: (fin, opcode, masked, unmasked payload)."""
    first, second = reader.exactly(2)
    fin, opcode = bool(first & 0x80), first & 0x0F
    masked, length = bool(second & 0x80), second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", reader.exactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", reader.exactly(8))
    mask = reader.exactly(4) if masked else b""
    data = reader.exactly(length)
    if masked:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return fin, opcode, masked, data


def _frame(opcode: int, data: bytes) -> bytes:
    """A final, unmasked frame: a server's frames are never masked."""
    head = bytes([0x80 | opcode])
    if len(data) < 126:
        head += bytes([len(data)])
    elif len(data) < 1 << 16:
        head += bytes([126]) + struct.pack("!H", len(data))
    else:
        head += bytes([127]) + struct.pack("!Q", len(data))
    return head + data
