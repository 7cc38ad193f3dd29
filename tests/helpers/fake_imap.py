"""A small IMAP server for tests, on loopback, holding mailboxes in memory.

It speaks the part of IMAP4rev1 that a client reading and filing mail uses, as Python's
imaplib sends it: CAPABILITY, LOGIN, SELECT, CREATE, UID SEARCH, UID FETCH (RFC822), UID MOVE
(RFC 6851), UID COPY, UID STORE +FLAGS, UID EXPUNGE (RFC 4315), EXPUNGE, NOOP,
LOGOUT. `fake.mailboxes[name]` is a list
of (uid, raw message); `fake.fail_login` refuses the login; `fake.no_move` leaves MOVE out of
the capabilities, so the client must COPY, flag and expunge.
"""

from __future__ import annotations

import itertools
import re
import socketserver
import threading
from typing import Any

_COMMAND = re.compile(rb"^(\S+) (\S+)(?: (.*))?$")


class FakeImap:
    def __init__(self, user: str = "integ-bot", password: str = "s3cret") -> None:
        self.user, self.password = user, password
        self.mailboxes: dict[str, list[tuple[int, bytes]]] = {"INBOX": []}
        self.fail_login = False
        self.no_move = False
        self.commands: list[str] = []
        self._uids = itertools.count(1)
        self._lock = threading.Lock()
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                _Session(fake, self).run()

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeImap:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def deliver(self, raw: bytes, mailbox: str = "INBOX") -> int:
        with self._lock:
            uid = next(self._uids)
            self.mailboxes.setdefault(mailbox, []).append((uid, raw))
            return uid


class _Session:
    def __init__(self, fake: FakeImap, handler: Any) -> None:
        self.fake = fake
        self.rfile, self.wfile = handler.rfile, handler.wfile
        self.selected: str | None = None
        self.deleted: set[int] = set()

    def send(self, line: bytes) -> None:
        self.wfile.write(line + b"\r\n")

    def run(self) -> None:
        self.send(b"* OK fake IMAP4rev1 ready")
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            found = _COMMAND.match(raw.rstrip(b"\r\n"))
            if found is None:
                self.send(b"* BAD unreadable")
                continue
            tag, name, args = found.group(1), found.group(2).upper(), found.group(3) or b""
            self.fake.commands.append(
                name.decode()
                + (" " + args.split()[0].decode().upper() if name == b"UID" and args else "")
            )
            if name == b"LOGOUT":
                self.send(b"* BYE")
                self.send(tag + b" OK LOGOUT done")
                return
            reply = self.dispatch(name, args)
            self.send(tag + b" " + reply)

    def dispatch(self, name: bytes, args: bytes) -> bytes:
        if name == b"CAPABILITY":
            caps = b"IMAP4rev1" + (b"" if self.fake.no_move else b" MOVE UIDPLUS")
            self.send(b"* CAPABILITY " + caps)
            return b"OK CAPABILITY done"
        if name == b"NOOP":
            return b"OK NOOP done"
        if name == b"LOGIN":
            user, password = (part.strip(b'"').decode() for part in args.split(b" ", 1))
            ok = not self.fake.fail_login and (user, password) == (
                self.fake.user,
                self.fake.password,
            )
            return b"OK LOGIN done" if ok else b"NO [AUTHENTICATIONFAILED] Invalid credentials"
        if name == b"CREATE":
            box = args.strip(b'"').decode()
            if box in self.fake.mailboxes:
                return b"NO [ALREADYEXISTS] Mailbox exists"
            self.fake.mailboxes[box] = []
            return b"OK CREATE done"
        if name == b"SELECT":
            box = args.strip(b'"').decode()
            if box not in self.fake.mailboxes:
                return b"NO [NONEXISTENT] No such mailbox"
            self.selected, self.deleted = box, set()
            self.send(b"* %d EXISTS" % len(self.fake.mailboxes[box]))
            return b"OK [READ-WRITE] SELECT done"
        if self.selected is None:
            return b"BAD Select a mailbox first"
        if name == b"EXPUNGE":
            box = self.fake.mailboxes[self.selected]
            box[:] = [(uid, raw) for uid, raw in box if uid not in self.deleted]
            self.deleted = set()
            return b"OK EXPUNGE done"
        if name == b"UID":
            return self.uid(args)
        return b"BAD Unknown command"

    def uid(self, args: bytes) -> bytes:
        verb, _, rest = args.partition(b" ")
        verb = verb.upper()
        box = self.fake.mailboxes[self.selected or ""]
        if verb == b"SEARCH":
            self.send(b"* SEARCH " + b" ".join(str(uid).encode() for uid, _ in box))
            return b"OK SEARCH done"
        uid_set, _, what = rest.partition(b" ")
        wanted = {int(u) for u in uid_set.split(b",") if u.isdigit()}
        chosen = [(uid, raw) for uid, raw in box if uid in wanted]
        if verb == b"FETCH":
            for n, (uid, raw) in enumerate(chosen, 1):
                self.wfile.write(
                    b"* %d FETCH (UID %d RFC822 {%d}\r\n" % (n, uid, len(raw)) + raw + b")\r\n"
                )
            return b"OK FETCH done"
        if verb in (b"MOVE", b"COPY"):
            if verb == b"MOVE" and self.fake.no_move:
                return b"BAD Unknown command"
            target = what.strip(b'"').decode()
            if target not in self.fake.mailboxes:
                return b"NO [TRYCREATE] No such mailbox"
            self.fake.mailboxes[target].extend(chosen)
            if verb == b"MOVE":
                box[:] = [(uid, raw) for uid, raw in box if uid not in wanted]
            return b"OK %s done" % verb
        if verb == b"EXPUNGE":  # UIDPLUS: only these, not every message flagged deleted
            gone = {uid for uid, _ in chosen} & self.deleted
            box[:] = [(uid, raw) for uid, raw in box if uid not in gone]
            self.deleted -= gone
            return b"OK EXPUNGE done"
        if verb == b"STORE":
            if b"\\Deleted" in what:
                self.deleted |= {uid for uid, _ in chosen}
            return b"OK STORE done"
        return b"BAD Unknown UID command"
