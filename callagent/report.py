"""The final report: what happened to every contact and every service.

:meth:`Report.as_json` is the ``--json-report`` contract of DESIGN.md; the same
figures render as the terminal table and decide the exit code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from callagent.events import format_timestamp
from callagent.journal import ContactState

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_INPUT = 2
EXIT_INTERRUPTED = 130

STATE_STYLES = {
    "CLOSED": "green",
    "HALF_OPEN": "yellow",
    "OPEN": "bold red",
}


@dataclass(frozen=True, slots=True)
class ServiceSummary:
    requests: int
    failures: int
    retries: int
    times_opened: int
    circuit_state: str


@dataclass(slots=True)
class Report:
    run_id: str
    command: str
    campaign: str
    started_at: datetime
    finished_at: datetime
    duration_s: float
    contacts: dict[str, int]
    services: dict[str, ServiceSummary]
    alerts: dict[str, int]
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)

    @staticmethod
    def contact_counts(counts: dict[ContactState, int]) -> dict[str, int]:
        """Journal counts as the report's five states.

        Contacts still pending or in progress when a run stops (Ctrl-C, or the wait
        for a service ran out) are called on the next run, so they count as deferred.
        """
        waiting = (
            counts.get(ContactState.DEFERRED, 0)
            + counts.get(ContactState.PENDING, 0)
            + counts.get(ContactState.IN_PROGRESS, 0)
        )
        result = {
            "completed": counts.get(ContactState.COMPLETED, 0),
            "failed": counts.get(ContactState.FAILED, 0),
            "deferred": waiting,
            "invalid": counts.get(ContactState.INVALID, 0),
            "interrupted": counts.get(ContactState.INTERRUPTED, 0),
        }
        return {"total": sum(result.values()), **result}

    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        contacts = self.contacts
        if contacts["failed"] or contacts["deferred"] or contacts["interrupted"]:
            return EXIT_INCOMPLETE
        return EXIT_OK

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "command": self.command,
            "campaign": self.campaign,
            "started_at": format_timestamp(self.started_at),
            "finished_at": format_timestamp(self.finished_at),
            "duration_s": round(self.duration_s, 3),
            "contacts": dict(self.contacts),
            "services": {
                name: {
                    "requests": s.requests,
                    "failures": s.failures,
                    "retries": s.retries,
                    "times_opened": s.times_opened,
                    "circuit_state": s.circuit_state,
                }
                for name, s in self.services.items()
            },
            "alerts": dict(self.alerts),
        }

    def render(self) -> RenderableType:
        """The report as rich tables, for the terminal."""
        contacts = Table(title=f"Campaign {self.campaign!r}", title_justify="left")
        contacts.add_column("Contacts")
        contacts.add_column("Count", justify="right")
        styles = {
            "completed": "green",
            "failed": "red",
            "deferred": "yellow",
            "invalid": "magenta",
            "interrupted": "red",
        }
        for key, value in self.contacts.items():
            contacts.add_row(Text(key, style=styles.get(key, "bold")), str(value))

        services = Table(title="Services", title_justify="left")
        for column in ("Service", "Requests", "Failures", "Retries", "Opened"):
            services.add_column(
                column, justify="left" if column == "Service" else "right"
            )
        services.add_column("Circuit")
        for name, s in self.services.items():
            services.add_row(
                name,
                str(s.requests),
                str(s.failures),
                str(s.retries),
                str(s.times_opened),
                Text(s.circuit_state, style=STATE_STYLES.get(s.circuit_state, "")),
            )

        alerts = ", ".join(f"{key} {value}" for key, value in self.alerts.items())
        footer = Text(
            f"Alerts: {alerts}\nRun {self.run_id} ({self.command}) took "
            f"{self.duration_s:.1f} s"
        )
        parts: list[RenderableType] = [contacts, services, footer]
        parts.extend(Text(note, style="yellow") for note in self.notes)
        return Group(*parts)
