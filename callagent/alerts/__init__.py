"""Alerts: the policy that decides when to tell a human, and the channels that do."""

from callagent.alerts.channels import Channel, MockChannel, build_channels
from callagent.alerts.manager import AlertLog, AlertManager
from callagent.alerts.model import Alert, Cause, Notification, Severity

__all__ = [
    "Alert",
    "AlertLog",
    "AlertManager",
    "Cause",
    "Channel",
    "MockChannel",
    "Notification",
    "Severity",
    "build_channels",
]
