"""SQLite's writers in one process take turns in the order they asked, so a ping waits for
the batch ahead of it and not for a whole tick; a turn that does not come in time is the
database being unavailable (503, try again), not a bug."""

from __future__ import annotations

import threading
import time

import pytest

from storage.db import make_engine, make_session_factory, unavailable
from storage.write_turns import Turns, TurnTimeout, turns_of, write_transaction


def wait_for_waiters(turns: Turns, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(turns._waiting) < count:
        assert time.monotonic() < deadline, "the waiters never queued"
        time.sleep(0.001)


def test_the_turn_goes_to_whoever_asked_first_and_a_writer_asking_again_queues_behind():
    turns = Turns()
    order: list[str] = []
    threads = []
    with turns.turn():
        for n, name in enumerate(["ping batch", "tick batch 2", "hook batch"]):
            thread = threading.Thread(target=lambda name=name: _take(turns, name, order))
            thread.start()
            threads.append(thread)
            wait_for_waiters(turns, n + 1)
        order.append("tick batch 1")
    # The first holder asks again at once: it is served after those already waiting.
    _take(turns, "tick batch 3", order)
    for thread in threads:
        thread.join(5)
    assert order == ["tick batch 1", "ping batch", "tick batch 2", "hook batch", "tick batch 3"]


def _take(turns: Turns, name: str, order: list[str]) -> None:
    with turns.turn():
        order.append(name)


def test_a_turn_that_does_not_come_in_time_is_refused_as_unavailable_and_leaves_no_trace():
    turns = Turns()
    refused: list[BaseException] = []

    def impatient() -> None:
        try:
            with turns.turn(timeout=0.05):
                pass
        except TurnTimeout as exc:
            refused.append(exc)

    with turns.turn():
        thread = threading.Thread(target=impatient)
        thread.start()
        thread.join(5)
    assert [str(e) for e in refused] == ["no turn to write within 0.05 s"]
    assert unavailable(refused[0])
    # The one that gave up is out of the line: the next writer gets the turn at once.
    assert not turns._waiting
    with turns.turn(timeout=0.05):
        pass


def test_only_sqlite_takes_turns(database_url):
    engine = make_engine(database_url)
    try:
        turns = turns_of(engine)
        if engine.dialect.name == "sqlite":
            assert isinstance(turns, Turns) and turns_of(engine) is turns
        else:
            assert turns is None
        with write_transaction(make_session_factory(engine)) as session:
            assert session.connection().exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        engine.dispose()


def test_a_write_that_raises_gives_the_turn_back(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'turns.db'}")
    factory = make_session_factory(engine)
    try:
        with pytest.raises(RuntimeError), write_transaction(factory):
            raise RuntimeError("a bug in the middle of a batch")
        turns = turns_of(engine)
        assert turns is not None and not turns._held
    finally:
        engine.dispose()
