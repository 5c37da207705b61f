"""Shared fixtures: every test runs in its own directory, on a virtual clock."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from callagent.clock import VirtualClock
from callagent.events import Event


@pytest.fixture(autouse=True, scope="session")
def _quiet_loguru() -> None:
    # The event log adds its own sinks; loguru's default stderr handler would echo
    # every event into the captured output.
    logger.remove()


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Relative paths (logs/, .callagent/) land in the test's own directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CALLAGENT_SETTINGS", raising=False)
    return tmp_path


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


class Recorder:
    """An event subscriber that keeps what it hears."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def named(self, name: str) -> list[Event]:
        return [event for event in self.events if event.event == name]

    def names(self) -> list[str]:
        return [event.event for event in self.events]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections are refused."""
    return free_port()


@pytest.fixture
def stalled_port() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(32)
        yield listener.getsockname()[1]
