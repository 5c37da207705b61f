"""``callagent health``: probe every configured service once, side by side.

The probes run concurrently, so one slow service costs its own timeout, not the sum
of all of them. The breaker column is the last state a campaign recorded in the
journal: a probe alone cannot say whether calls are being refused.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from callagent.clock import Clock
from callagent.health import ProbeResult, probe
from callagent.journal import ServiceStatusStore
from callagent.report import STATE_STYLES
from callagent.services.base import ServiceSet


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    name: str
    provider: str
    probe: ProbeResult
    circuit_state: str


def check_services(
    services: ServiceSet, clock: Clock, *, state_db: Path | None
) -> list[ServiceHealth]:
    """Probe each service once; pair it with its last known breaker state."""
    members = services.all()
    with ThreadPoolExecutor(max_workers=len(members)) as pool:
        results = list(pool.map(lambda service: probe(service, clock), members))
    known = _last_known_states(state_db)
    return [
        ServiceHealth(
            name=service.name,
            provider=service.provider,
            probe=result,
            circuit_state=known.get(service.name, "CLOSED"),
        )
        for service, result in zip(members, results, strict=True)
    ]


def _last_known_states(state_db: Path | None) -> dict[str, str]:
    # A missing journal means no campaign ever ran here: every breaker is closed,
    # and health must not create a database as a side effect.
    if state_db is None or not state_db.is_file():
        return {}
    store = ServiceStatusStore.open(state_db)
    try:
        return {
            name: record["state"] for name, record in store.breaker_states().items()
        }
    finally:
        store.close()


def as_json(checks: list[ServiceHealth]) -> dict[str, Any]:
    """The ``health --json`` document of DESIGN.md."""
    return {
        "services": {
            check.name: {
                "healthy": check.probe.healthy,
                "latency_ms": (
                    round(check.probe.latency_ms, 1)
                    if check.probe.latency_ms is not None
                    else None
                ),
                "circuit_state": check.circuit_state,
                "error": check.probe.error,
            }
            for check in checks
        }
    }


def render(checks: list[ServiceHealth]) -> Table:
    table = Table(title="Service health", title_justify="left")
    for column in ("Service", "Provider", "Healthy", "Latency", "Circuit", "Error"):
        table.add_column(column, justify="right" if column == "Latency" else "left")
    for check in checks:
        result = check.probe
        healthy = (
            Text("yes", style="green")
            if result.healthy
            else Text("no", style="bold red")
        )
        latency = (
            f"{result.latency_ms:.0f} ms" if result.latency_ms is not None else "-"
        )
        table.add_row(
            check.name,
            check.provider,
            healthy,
            latency,
            Text(check.circuit_state, style=STATE_STYLES.get(check.circuit_state, "")),
            Text(result.error or "", overflow="fold"),
        )
    return table
