"""Alert channels: where notifications go.

A channel in ``mock`` mode delivers nothing: the alert manager writes every
notification to ``logs/alerts.jsonl`` whatever the mode, so a mock channel's line is
the whole delivery, and a paging set-up can be rehearsed without paging anyone.
"""

from __future__ import annotations

from typing import Protocol

from callagent.alerts.model import Notification
from callagent.errors import InputError
from callagent.settings import AlertsSettings


class Channel(Protocol):
    """One destination for notifications."""

    @property
    def name(self) -> str: ...

    @property
    def mode(self) -> str: ...

    @property
    def send_resolved(self) -> bool: ...

    def send(self, notification: Notification) -> None:
        """Deliver, or raise a ServiceError saying why not."""

    def close(self) -> None: ...


class MockChannel:
    """A channel that records instead of sending."""

    mode = "mock"

    def __init__(self, name: str, *, send_resolved: bool = True) -> None:
        self._name = name
        self._send_resolved = send_resolved
        self.sent: list[Notification] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def send_resolved(self) -> bool:
        return self._send_resolved

    def send(self, notification: Notification) -> None:
        self.sent.append(notification)

    def close(self) -> None:
        return None


def build_channels(settings: AlertsSettings) -> list[Channel]:
    """One channel per configured destination, mock unless set to live."""
    channels: list[Channel] = []
    configured = settings.channels
    for name in ("email", "telegram", "webhook"):
        config = getattr(configured, name)
        if config.mode == "mock":
            channels.append(MockChannel(name, send_resolved=config.send_resolved))
        else:
            channels.append(_live_channel(name, settings))
    return channels


def _live_channel(name: str, settings: AlertsSettings) -> Channel:
    raise InputError(f"alerts.channels.{name}.mode: live delivery is not available")
