"""What a person watching a campaign sees.

In a terminal: a live view with progress, each service's breaker state, a countdown
while the campaign waits on a service, and the latest events. Without a terminal (or
with ``--no-live``): plain lines, no escape codes, for the events worth reading and a
progress line every tenth of the campaign.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from callagent.clock import Clock
from callagent.events import Event
from callagent.journal import ContactState
from callagent.orchestrator import WaitState
from callagent.report import STATE_STYLES

#: Events a person wants to read as they happen; the rest are counted, not shown.
NOTABLE = frozenset(
    {
        "campaign_started",
        "campaign_finished",
        "contact_invalid",
        "retry_scheduled",
        "call_failed",
        "circuit_opened",
        "circuit_half_opened",
        "circuit_closed",
        "health_check_passed",
        "health_check_failed",
        "alert_sent",
        "alert_failed",
    }
)

_EVENT_STYLES = {
    "call_failed": "red",
    "circuit_opened": "bold red",
    "circuit_half_opened": "yellow",
    "circuit_closed": "green",
    "health_check_failed": "red",
    "health_check_passed": "green",
    "alert_sent": "magenta",
    "alert_failed": "bold magenta",
    "retry_scheduled": "yellow",
}


def describe(event: Event) -> str:
    """One line about an event: when, what, where, why."""
    parts = [event.timestamp.strftime("%H:%M:%S"), event.event]
    if event.service:
        parts.append(event.service)
    if event.call_id:
        parts.append(event.call_id)
    extra = event.extra
    if "delay_s" in extra:
        parts.append(f"in {extra['delay_s']:g} s")
    if event.retry_count is not None and event.event == "call_failed":
        parts.append(f"after {event.retry_count} retries")
    if "alert_channel" in extra:
        parts.append(f"via {extra['alert_channel']}")
    message = extra.get("message")
    if message and event.event not in {"retry_scheduled"}:
        parts.append(f"- {message}")
    return " ".join(parts)


class Dashboard:
    """Subscribes to events; renders live or prints plain lines."""

    def __init__(
        self,
        console: Console,
        *,
        live: bool,
        clock: Clock,
        counts: Callable[[], dict[ContactState, int]],
        services: tuple[str, ...],
        recent: int = 8,
    ) -> None:
        self._console = console
        self._live_enabled = live
        self._clock = clock
        self._counts = counts
        self._states = dict.fromkeys(services, "CLOSED")
        self._opened = dict.fromkeys(services, 0)
        self._recent: deque[Event] = deque(maxlen=recent)
        self._wait: WaitState | None = None
        #: Calls sleeping out a retry backoff: call id -> (service, clock time due).
        self._backoffs: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._next_progress_tenth = 1
        self._total = 0
        self._started = clock.monotonic()

    # Event intake --------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        if event.service in self._states and event.circuit_state:
            self._states[event.service] = event.circuit_state
        if event.call_id is not None and self._live_enabled:
            self._track_backoff(event.call_id, event)
        if event.event == "circuit_opened" and event.service in self._opened:
            self._opened[event.service] += 1
        if event.event not in NOTABLE:
            if not self._live_enabled and event.event in _DONE_EVENTS:
                self._maybe_print_progress()
            return
        with self._lock:
            self._recent.append(event)
        if not self._live_enabled:
            self._print(describe(event))

    def _track_backoff(self, call_id: str, event: Event) -> None:
        with self._lock:
            if event.event == "retry_scheduled" and event.service is not None:
                delay = float(event.extra.get("delay_s", 0.0))
                due = self._clock.monotonic() + delay
                self._backoffs[call_id] = (event.service, due)
            else:
                # Any later event of the call means its wait is over.
                self._backoffs.pop(call_id, None)

    def on_wait(self, wait: WaitState | None) -> None:
        announce = wait is not None and (
            self._wait is None or self._wait.reason != wait.reason
        )
        self._wait = wait
        if announce and wait is not None and not self._live_enabled:
            self._print(f"{self._clock.now():%H:%M:%S} {wait.reason}")

    def _print(self, line: str) -> None:
        # soft_wrap: a plain line stays one line however narrow the terminal, so
        # scripts can grep it.
        self._console.print(line, markup=False, highlight=False, soft_wrap=True)

    def _maybe_print_progress(self) -> None:
        if not self._total:
            self._total = sum(self._counts().values())
        if not self._total:
            return
        counts = self._counts()
        done = _done(counts)
        if done * 10 < self._next_progress_tenth * self._total:
            return
        while done * 10 >= self._next_progress_tenth * self._total:
            self._next_progress_tenth += 1
        self._print(
            f"{self._clock.now():%H:%M:%S} progress {done}/{self._total} "
            + _summary(counts)
        )

    # Live view -----------------------------------------------------------------

    def __enter__(self) -> Dashboard:
        if self._live_enabled:
            self._live = Live(
                get_renderable=self.render,
                console=self._console,
                refresh_per_second=8,
                transient=False,
            )
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def render(self) -> RenderableType:
        counts = self._counts()
        total = sum(counts.values())
        done = _done(counts)
        elapsed_min = (self._clock.monotonic() - self._started) / 60
        rate = f"{done / elapsed_min:.1f} contacts/min" if elapsed_min > 0 else ""
        header = Text.assemble(
            ("callagent ", "bold"),
            f"{self._clock.now():%Y-%m-%d %H:%M:%S} UTC  ",
            (f"{done}/{total} contacts", "bold"),
            f"  {rate}",
        )
        progress = Table.grid(padding=(0, 1))
        progress.add_row(
            ProgressBar(total=max(total, 1), completed=done, width=50),
            Text(f"{100 * done / max(total, 1):3.0f}%"),
        )
        summary = Text(_summary(counts))

        breakers = Table(box=None, padding=(0, 2), show_edge=False)
        breakers.add_column("Service", style="bold")
        breakers.add_column("Circuit")
        breakers.add_column("Opened", justify="right")
        for name, state in self._states.items():
            breakers.add_row(
                name,
                Text(state, style=STATE_STYLES.get(state, "")),
                str(self._opened[name]),
            )

        parts: list[RenderableType] = [header, progress, summary, Text(""), breakers]
        wait = self._wait
        if wait is not None:
            seconds = max(wait.until - self._clock.monotonic(), 0.0)
            parts.append(
                Text(f"\n{wait.reason}: next check in {seconds:.0f} s", style="yellow")
            )
        now = self._clock.monotonic()
        with self._lock:
            recent = list(self._recent)
            backoffs = sorted(self._backoffs.items(), key=lambda item: item[1][1])
        if backoffs and wait is None:
            parts.append(Text(""))
        for call_id, (service, due) in backoffs[:3]:
            parts.append(
                Text(
                    f"{call_id}: retrying {service} in {max(due - now, 0.0):.0f} s",
                    style="yellow",
                )
            )
        if recent:
            parts.append(Text("\nRecent events", style="bold"))
            for event in recent:
                style = _EVENT_STYLES.get(event.event, "")
                parts.append(
                    Text(
                        describe(event), style=style, overflow="ellipsis", no_wrap=True
                    )
                )
        return Group(*parts)


_DONE_EVENTS = frozenset({"call_completed", "call_failed", "call_deferred"})


def _done(counts: dict[ContactState, int]) -> int:
    return (
        counts.get(ContactState.COMPLETED, 0)
        + counts.get(ContactState.FAILED, 0)
        + counts.get(ContactState.INVALID, 0)
        + counts.get(ContactState.INTERRUPTED, 0)
    )


def _summary(counts: dict[ContactState, int]) -> str:
    shown = (
        ContactState.COMPLETED,
        ContactState.FAILED,
        ContactState.DEFERRED,
        ContactState.INVALID,
        ContactState.PENDING,
        ContactState.IN_PROGRESS,
    )
    return "  ".join(f"{state.value} {counts.get(state, 0)}" for state in shown)
