"""Delivery: getting each notification to each channel without holding up the campaign.

A live channel's sends go through the project's retry engine
(:class:`~callagent.retry.Guard`) with a breaker of the channel's own, so a dead
pager costs a few attempts and then fails fast until its recovery timeout; the
breaker lets the first send after that timeout through as its trial, since nothing
probes a channel.

Where the sends run depends on the clock:

- on the real clock, each live channel has a worker thread and a bounded queue:
  submitting never waits on the network, a slow channel never delays another, and a
  full queue drops the notification (reported as failed) rather than grow without
  end. At the end of a run :meth:`Delivery.wait_idle` and :meth:`Delivery.close`
  share one drain limit: what is not delivered by then is abandoned, cutting short
  any retry wait, and reported as failed;
- on a virtual clock, sends run on the caller's thread and their retry waits are
  virtual, so a simulation gives the same events every time.

Mock channels are always delivered inline: they only record. Every notification is
reported exactly once, delivered or not, through the ``report`` callback.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from callagent.alerts.channels import Channel
from callagent.alerts.model import Notification
from callagent.breaker import CircuitBreaker
from callagent.clock import Clock, StoppableClock, Stopped, VirtualClock
from callagent.errors import CallAgentError
from callagent.events import Emitter
from callagent.retry import Guard
from callagent.settings import BreakerSettings, RetrySettings

#: Called once per notification and channel: the error text, or None if delivered.
Report = Callable[[Channel, Notification, str | None], None]

_ABANDONED = "not delivered: delivery stopped at shutdown"


class Delivery:
    """Sends notifications to channels, retried, behind breakers, off the hot path."""

    def __init__(
        self,
        channels: Sequence[Channel],
        clock: Clock,
        events: Emitter,
        report: Report,
        *,
        retry: RetrySettings,
        breaker: BreakerSettings,
        background: bool | None = None,
        queue_size: int = 100,
        drain_timeout_s: float = 10.0,
    ) -> None:
        if background is None:
            background = not isinstance(clock, VirtualClock)
        self._report = report
        self._clock = clock
        self._drain_timeout_s = drain_timeout_s
        self._drain_deadline: float | None = None
        self._abandon = threading.Event()
        send_clock = StoppableClock(clock, self._abandon) if background else clock
        self._routes: dict[str, _Route] = {}
        self._workers: dict[str, _Worker] = {}
        for channel in channels:
            route = _Route(channel, send_clock, events, retry, breaker)
            self._routes[channel.name] = route
            if background and route.guard is not None:
                self._workers[channel.name] = _Worker(
                    route, report, queue_size, self._abandon
                )

    def submit(self, channel: Channel, notification: Notification) -> None:
        """Deliver now or queue for a worker; the outcome goes to ``report``."""
        worker = self._workers.get(channel.name)
        if worker is None:
            error = self._routes[channel.name].send(notification)
            self._report(channel, notification, error)
            return
        refused = worker.put(notification)
        if refused is not None:
            self._report(channel, notification, refused)

    def wait_idle(self) -> bool:
        """Wait until every queued send is done; False if the drain limit ran out."""
        deadline = self._deadline()
        return all(
            worker.wait_idle(max(deadline - self._clock.monotonic(), 0.0))
            for worker in self._workers.values()
        )

    def close(self) -> None:
        """Let queued sends finish within the drain limit, then give up on the rest."""
        workers = list(self._workers.values())
        for worker in workers:
            worker.stop()
        deadline = self._deadline()
        for worker in workers:
            worker.join(max(deadline - self._clock.monotonic(), 0.0))
        # Cuts short any retry wait still running; a request already on the wire
        # keeps its own timeout, and its outcome is reported below instead.
        self._abandon.set()
        for worker in workers:
            worker.join(0.2)
            worker.abandon_rest()

    def _deadline(self) -> float:
        # One drain limit for the end of the run, however many steps wait on it.
        if self._drain_deadline is None:
            self._drain_deadline = self._clock.monotonic() + self._drain_timeout_s
        return self._drain_deadline


class _Route:
    """One channel, with its guard when it is live."""

    def __init__(
        self,
        channel: Channel,
        clock: Clock,
        events: Emitter,
        retry: RetrySettings,
        breaker: BreakerSettings,
    ) -> None:
        self.channel = channel
        self.guard: Guard | None = None
        if channel.mode == "live":
            self.guard = Guard(
                channel.name,
                CircuitBreaker(channel.name, breaker, clock, probe_driven=False),
                retry,
                clock,
                _DeliveryEvents(events, channel.name),
            )

    def send(self, notification: Notification) -> str | None:
        """Deliver through the guard; the reason it failed, or None."""
        channel = self.channel
        try:
            if self.guard is None:
                channel.send(notification)
            else:
                self.guard.call(lambda: channel.send(notification))
        except CallAgentError as exc:
            return str(exc)
        except Stopped:
            return f"{channel.name}: {_ABANDONED}"
        except Exception as exc:
            # A bug in a channel must not stop the campaign. Only the class is kept:
            # an unexpected exception's text was not built to be safe to log and may
            # quote a URL or header.
            return f"{channel.name}: unexpected {type(exc).__name__}"
        return None


class _Worker:
    """A channel's background sender: one thread draining a bounded queue.

    Outcomes are reported outside the worker's lock, so a report that logs and emits
    events never holds up a caller queueing the next notification.
    """

    def __init__(
        self,
        route: _Route,
        report: Report,
        limit: int,
        abandon: threading.Event,
    ) -> None:
        self._route = route
        self._report = report
        self._limit = limit
        self._abandon = abandon
        self._cond = threading.Condition()
        self._queue: deque[Notification] = deque()
        self._in_flight: Notification | None = None
        self._reporting = False
        self._stopping = False
        # Set once close() has reported what is left: later outcomes are dropped so
        # that each notification is reported once, and never after the log closed.
        self._muted = False
        self._thread = threading.Thread(
            target=self._run, name=f"alerts-{route.channel.name}", daemon=True
        )
        self._thread.start()

    def put(self, notification: Notification) -> str | None:
        """Queue a send; the reason it was refused, or None."""
        name = self._route.channel.name
        with self._cond:
            if self._stopping:
                return f"{name}: not delivered: delivery already closed"
            if len(self._queue) >= self._limit:
                return f"{name}: not delivered: queue full ({self._limit} waiting)"
            self._queue.append(notification)
            self._cond.notify_all()
        return None

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: (
                    not self._queue and self._in_flight is None and not self._reporting
                ),
                timeout,
            )

    def abandon_rest(self) -> None:
        """Report what is still queued or in flight as undelivered, once."""
        with self._cond:
            if self._muted:
                return
            self._muted = True
            # A report already under way finishes first: it holds a notification
            # that is no longer queued nor in flight.
            while self._reporting:
                self._cond.wait()
            left = list(self._queue)
            self._queue.clear()
            if self._in_flight is not None:
                left.insert(0, self._in_flight)
                self._in_flight = None
        error = f"{self._route.channel.name}: {_ABANDONED}"
        for notification in left:
            self._report(self._route.channel, notification, error)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue or self._muted:
                    return
                notification = self._queue.popleft()
                self._in_flight = notification
            if self._abandon.is_set():
                error: str | None = f"{self._route.channel.name}: {_ABANDONED}"
            else:
                error = self._route.send(notification)
            with self._cond:
                if self._muted:
                    return
                self._in_flight = None
                self._reporting = True
            try:
                self._report(self._route.channel, notification, error)
            finally:
                with self._cond:
                    self._reporting = False
                    self._cond.notify_all()


class _DeliveryEvents:
    """The guard's events, told as alert delivery rather than as a service's.

    A failed attempt is not a ``service_error`` (that event is a pipeline request of
    a call); the final outcome becomes ``alert_sent`` or ``alert_failed`` and each
    wait before a retry stays a ``retry_scheduled`` naming the channel.
    """

    def __init__(self, events: Emitter, channel: str) -> None:
        self._events = events
        self._channel = channel

    def emit(
        self,
        event: str,
        *,
        call_id: str | None = None,
        service: str | None = None,
        error_category: str | None = None,
        retry_count: int | None = None,
        **extra: Any,
    ) -> None:
        if event != "retry_scheduled":
            return
        message = extra.pop("message", None)
        self._events.emit(
            event,
            error_category=error_category,
            retry_count=retry_count,
            **{
                **extra,
                "alert_channel": self._channel,
                "message": f"alert delivery via {self._channel}: {message}",
            },
        )
