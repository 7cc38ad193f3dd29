"""Writers of one SQLite database taking turns in the order they came.

SQLite has one write lock per database. A connection that finds it taken sleeps and tries
again (the busy handler, in steps growing to 100 ms), so a writer that commits and at once
begins its next transaction, as a tick working through a night of missed runs does, keeps
winning, and a ping waiting meanwhile can wait for the whole tick. The process's busy
writers (the intake writer, the tick's batches, retention) instead queue here and are handed
the turn one after another, so a ping waits at most for the batch ahead of it.

PostgreSQL locks rows, not the database: there a write transaction takes no turn.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from weakref import WeakKeyDictionary

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

# As long as SQLite's own wait for its lock (storage.db.SQLITE_BUSY_TIMEOUT_SECONDS).
TURN_TIMEOUT_SECONDS = 5.0


class TurnTimeout(TimeoutError):
    """The turn did not come in time: the database is held by a long write."""


class Turns:
    """A first-come, first-served lock: whoever releases it hands it to the oldest waiter,
    so a thread that releases and asks again goes to the back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: deque[threading.Event] = deque()
        self._held = False

    @contextmanager
    def turn(self, timeout: float = TURN_TIMEOUT_SECONDS) -> Iterator[None]:
        self._acquire(timeout)
        try:
            yield
        finally:
            self._release()

    def _acquire(self, timeout: float) -> None:
        with self._lock:
            if not self._held:
                self._held = True
                return
            mine = threading.Event()
            self._waiting.append(mine)
        if mine.wait(timeout):
            return
        with self._lock:
            if mine.is_set():
                return  # handed over as the wait ended: the turn is ours
            self._waiting.remove(mine)
        raise TurnTimeout(f"no turn to write within {timeout:g} s")

    def _release(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()  # still held: now by the next in line
            else:
                self._held = False


_TURNS: WeakKeyDictionary[Engine, Turns] = WeakKeyDictionary()
_TURNS_LOCK = threading.Lock()


def turns_of(engine: Engine) -> Turns | None:
    """The turns of this SQLite database's writers in this process; None on PostgreSQL."""
    if engine.dialect.name != "sqlite":
        return None
    with _TURNS_LOCK:
        found = _TURNS.get(engine)
        if found is None:
            found = _TURNS[engine] = Turns()
        return found


@contextmanager
def write_transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A short transaction that writes, taken in turn with this process's other busy writers
    on SQLite: committed when the block ends, rolled back if it raises."""
    engine = factory.kw["bind"]
    turns = turns_of(engine) if isinstance(engine, Engine) else None
    if turns is None:
        with factory() as session, session.begin():
            yield session
        return
    with turns.turn(), factory() as session, session.begin():
        yield session
