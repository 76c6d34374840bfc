"""One Store, one engine: 8 threads making the first call together (review finding 2).

The store is cold (no engine yet) when the threads start; building the
engine is slowed a little so that they all arrive while it is being built.
Before the lazy build was guarded, each thread that arrived built its own
engine, and every pool but the last kept connections nothing closed.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.integration.test_store import PASSWORD, open_store
from vutf_cli.db import database as database_module

THREADS = 8


def test_a_cold_store_builds_one_engine_for_eight_threads(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(database_url) as seeding:
        seeding.create_user("dora", "dora@example.org", password=PASSWORD)

    built: list[Engine] = []
    make_engine = database_module.make_engine

    def counted(*args: Any, **kwargs: Any) -> Engine:
        time.sleep(0.05)  # the window in which other threads used to arrive
        engine = make_engine(*args, **kwargs)
        built.append(engine)
        return engine

    monkeypatch.setattr(database_module, "make_engine", counted)
    store = open_store(database_url)
    start = threading.Barrier(THREADS)
    names: list[str] = []
    errors: list[BaseException] = []

    def first_call() -> None:
        try:
            start.wait()
            names.append(store.get_user("dora").username)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=first_call) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        assert names == ["dora"] * THREADS
        assert len(built) == 1  # one engine, one pool
    finally:
        store.close()


def _first_call_in_child(store: Any) -> None:
    assert store.get_user("erin").username == "erin"


def test_a_child_forked_while_another_thread_builds_the_engine_is_not_stuck(
    database_url: str,
) -> None:
    """Review finding 15: the build lock a parent's thread held at the fork is renewed."""
    with open_store(database_url) as seeding:
        seeding.create_user("erin", "erin@example.org", password=PASSWORD)
    store = open_store(database_url)  # cold: the child builds its own engine
    holding, release = threading.Event(), threading.Event()

    def hold_the_build_lock() -> None:
        with store._db._build_lock:  # as a thread in the middle of building would
            holding.set()
            release.wait(60)

    holder = threading.Thread(target=hold_the_build_lock)
    holder.start()
    try:
        assert holding.wait(60)
        child = multiprocessing.get_context("fork").Process(
            target=_first_call_in_child, args=(store,)
        )
        child.start()
        child.join(60)
        if child.exitcode is None:
            child.kill()
        assert child.exitcode == 0
    finally:
        release.set()
        holder.join(60)
        store.close()
