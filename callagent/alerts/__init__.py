"""Alerts: the policy that decides when to tell a human, and the channels that do."""

from callagent.alerts.channels import (
    CHANNEL_NAMES,
    Channel,
    MockChannel,
    build_channel,
    build_channels,
)
from callagent.alerts.delivery import Delivery
from callagent.alerts.manager import AlertLog, AlertManager
from callagent.alerts.model import Alert, Cause, Notification, Severity
from callagent.alerts.testsend import ChannelTestResult, send_test

__all__ = [
    "CHANNEL_NAMES",
    "Alert",
    "AlertLog",
    "AlertManager",
    "Cause",
    "Channel",
    "ChannelTestResult",
    "Delivery",
    "MockChannel",
    "Notification",
    "Severity",
    "build_channel",
    "build_channels",
    "send_test",
]
