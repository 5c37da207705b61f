"""Plain-text renderings of a notification, for channels a person reads."""

from __future__ import annotations

from callagent.alerts.model import Notification
from callagent.events import format_timestamp


def facts(notification: Notification) -> list[str]:
    """The labels a responder filters and searches by, one per line."""
    return [
        f"Status: {notification.status}",
        f"Service: {notification.service}",
        f"Cause: {notification.cause}",
        f"Severity: {notification.severity}",
        f"Event time: {format_timestamp(notification.at)}",
        f"Alert id: {notification.fingerprint}",
    ]


def plain_text(notification: Notification) -> str:
    """The body, then the key facts: what an email says."""
    return notification.body + "\n\n" + "\n".join(facts(notification))


def message_text(notification: Notification, limit: int) -> str:
    """Title, body and facts in at most ``limit`` characters: what a chat says."""
    text = notification.title + "\n\n" + plain_text(notification)
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"
