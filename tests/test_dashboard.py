"""The live view and the plain lines, rendered at a fixed width without colour."""

from __future__ import annotations

import io

from rich.console import Console

from callagent.clock import VirtualClock
from callagent.dashboard import Dashboard
from callagent.events import EventBus
from callagent.journal import ContactState
from callagent.orchestrator import WaitState

SERVICES = ("crm", "llm", "elevenlabs")


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=100, no_color=True, force_terminal=False), out


def counts(**states: int) -> dict[ContactState, int]:
    return {state: states.get(state.value, 0) for state in ContactState}


class TestLiveView:
    def test_shows_progress_breakers_and_countdowns(self) -> None:
        """Progress, each breaker's state, the wait and a backoff countdown."""
        clock = VirtualClock()
        term, out = console()
        board = Dashboard(
            term, live=True, clock=clock, services=SERVICES,
            counts=lambda: counts(completed=3, deferred=1, pending=6),
        )  # fmt: skip
        bus = EventBus(clock, "run", lambda service: "OPEN")
        bus.subscribe(board)
        bus.emit("retry_scheduled", call_id="CALL_000004", service="elevenlabs",
                 delay_s=10.0)  # fmt: skip
        bus.emit("circuit_opened", service="elevenlabs", message="4 failures")
        board.on_wait(WaitState("waiting for elevenlabs to recover", until=30.0))
        clock.advance(4)

        term.print(board.render())
        screen = out.getvalue()
        assert "3/10 contacts" in screen
        assert "30%" in screen
        assert "completed 3  failed 0  deferred 1" in screen
        assert "elevenlabs    OPEN" in screen
        assert "crm           CLOSED" in screen
        assert "waiting for elevenlabs to recover: next check in 26 s" in screen
        assert "CALL_000004: retrying elevenlabs in 6 s" in screen
        assert "circuit_opened elevenlabs - 4 failures" in screen

    def test_backoff_countdown_ends_with_the_next_event_of_the_call(self) -> None:
        """Once the retried call logs anything else, its countdown disappears."""
        clock = VirtualClock()
        term, out = console()
        board = Dashboard(term, live=True, clock=clock, services=SERVICES,
                          counts=lambda: counts(pending=1))  # fmt: skip
        bus = EventBus(clock, "run")
        bus.subscribe(board)
        bus.emit("retry_scheduled", call_id="CALL_000001", service="llm", delay_s=5)
        bus.emit("call_completed", call_id="CALL_000001")
        term.print(board.render())
        assert "retrying" not in out.getvalue()


class TestPlainLines:
    def test_notable_events_and_tenths_of_progress_only(self) -> None:
        """Without a terminal: one line per notable event, progress every tenth."""
        clock = VirtualClock()
        term, out = console()
        done = {"completed": 0}

        def progress() -> dict[ContactState, int]:
            return counts(completed=done["completed"], pending=20 - done["completed"])

        board = Dashboard(
            term, live=False, clock=clock, services=SERVICES, counts=progress
        )
        bus = EventBus(clock, "run")
        bus.subscribe(board)
        for number in range(1, 21):
            bus.emit("call_started", call_id=f"CALL_{number:06d}")
            done["completed"] = number
            bus.emit("call_completed", call_id=f"CALL_{number:06d}")
        bus.emit("circuit_opened", service="llm", message="auth")
        lines = out.getvalue().splitlines()
        assert sum("progress" in line for line in lines) == 10
        assert (
            lines[0] == "09:00:00 progress 2/20 completed 2  failed 0  deferred 0"
            "  invalid 0  pending 18  in_progress 0"
        )
        assert lines[-1] == "09:00:00 circuit_opened llm - auth"
        assert not any("call_started" in line for line in lines)
        assert "\x1b[" not in out.getvalue()

    def test_wait_is_announced_once(self) -> None:
        """Repeated waits for the same reason print one line."""
        clock = VirtualClock()
        term, out = console()
        board = Dashboard(term, live=False, clock=clock, services=SERVICES,
                          counts=lambda: counts(deferred=2))  # fmt: skip
        for until in (30.0, 60.0, 90.0):
            board.on_wait(WaitState("waiting for crm to recover", until))
        assert out.getvalue().splitlines() == ["09:00:00 waiting for crm to recover"]
