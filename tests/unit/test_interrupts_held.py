"""`interrupts.interrupts_held`: the end of a transaction runs whole (docs/architecture.md §5.4).

A signal that arrives inside is handled when the block ends, by the handler it would
have met: vutf's (SIGTERM, SIGHUP), Python's for Ctrl-C, or an embedding program's.
Real signals, sent to this process; pytest runs tests in its main thread.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from vutf_cli.interrupts import INTERRUPTING_SIGNALS, interrupt_on_signals, interrupts_held


@pytest.fixture
def vutf_handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in INTERRUPTING_SIGNALS}
    interrupt_on_signals()
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _signal_inside(sig: signal.Signals, steps: list[str]) -> None:
    with interrupts_held():
        os.kill(os.getpid(), sig)
        steps.append("after the signal")  # still inside: it was held
    steps.append("after the block")


def _signal_then_work(sig: signal.Signals) -> None:
    os.kill(os.getpid(), sig)
    for _ in range(1000):  # the handler runs between two of these
        pass


def _signal_during_an_error() -> None:
    with interrupts_held():
        os.kill(os.getpid(), signal.SIGTERM)
        raise RuntimeError("the commit failed")


@pytest.mark.usefixtures("vutf_handlers")
@pytest.mark.parametrize("sig", sorted(INTERRUPTING_SIGNALS), ids=lambda s: s.name)
def test_a_signal_inside_is_raised_once_the_block_has_run_whole(sig: signal.Signals) -> None:
    steps: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        _signal_inside(sig, steps)
    assert steps == ["after the signal"]
    # The handlers are vutf's again: the next signal interrupts at once.
    with pytest.raises(KeyboardInterrupt):
        _signal_then_work(sig)


@pytest.mark.usefixtures("vutf_handlers")
def test_a_signal_during_an_error_still_interrupts_and_keeps_the_error_as_context() -> None:
    with pytest.raises(KeyboardInterrupt) as caught:
        _signal_during_an_error()
    assert isinstance(caught.value.__context__, RuntimeError)


def test_an_embedding_programs_handler_is_called_after_the_block() -> None:
    calls: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    try:
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGTERM)
            assert calls == []
        assert calls == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_no_signal_nothing_changes() -> None:
    before = {sig: signal.getsignal(sig) for sig in INTERRUPTING_SIGNALS}
    with interrupts_held():
        pass
    assert {sig: signal.getsignal(sig) for sig in INTERRUPTING_SIGNALS} == before
