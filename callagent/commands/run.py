"""``callagent run``: a campaign over a contacts file, durable and resumable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from callagent.breaker import Transition
from callagent.campaign import Campaign, Hooks
from callagent.clock import Clock, SystemClock
from callagent.commands.common import (
    SigtermAsInterrupt,
    conclude,
    input_failure,
    run_campaign,
    settings_from,
)
from callagent.contacts import read_contacts
from callagent.dashboard import Dashboard
from callagent.errors import InputError
from callagent.events import format_timestamp
from callagent.health import ProbeResult
from callagent.journal import SqliteJournal
from callagent.loading import load_into_sqlite
from callagent.report import Report
from callagent.services.factory import build_services
from callagent.settings import SERVICE_NAMES


def run(
    *,
    contacts: Path,
    settings_path: Path | None,
    campaign_name: str | None,
    fresh: bool,
    redial_interrupted: bool,
    workers: int | None,
    json_report: Path | None,
    no_live: bool,
) -> None:
    console = Console()
    clock = SystemClock()
    # Everything that can be wrong with the input is found before anything is
    # called: settings, the file, the keys, the journal, the log directory.
    try:
        settings = settings_from(settings_path)
        if workers is not None:
            settings = settings.with_workers(workers)
        region = settings.contacts.default_region
        reader = read_contacts(contacts, default_region=region)
        services = build_services(settings, clock)
    except InputError as error:
        raise input_failure(error) from None
    try:
        journal = SqliteJournal.open(
            settings.storage.path,
            campaign_name or contacts.stem,
            fresh=fresh,
            redial_interrupted=redial_interrupted,
            synchronous=settings.storage.synchronous,
        )
    except InputError as error:
        services.close()
        raise input_failure(error) from None

    dashboard = Dashboard(
        console,
        live=console.is_terminal and not no_live,
        clock=clock,
        counts=journal.counts,
        services=SERVICE_NAMES,
    )
    hooks = Hooks(
        subscribers=[dashboard],
        on_transition=[_persist_transition(journal, clock)],
        on_probe=_persist_probe(journal, clock),
        on_wait=dashboard.on_wait,
    )
    try:
        campaign = Campaign(
            command="run",
            settings=settings,
            clock=clock,
            journal=journal,
            services=services,
            hooks=hooks,
        )
    except InputError as error:
        services.close()
        journal.close()
        raise input_failure(error) from None
    try:
        load_into_sqlite(journal, reader, campaign.events)
    except InputError as error:
        campaign.close()
        journal.close()
        raise input_failure(error) from None

    if journal.is_complete():
        report = campaign.report()
        campaign.close()
        journal.close()
        _say_complete(console, journal.campaign, report)
        conclude(console, report, json_report)
    with SigtermAsInterrupt(), dashboard:
        try:
            report = run_campaign(campaign)
        finally:
            journal.close()
    conclude(console, report, json_report)


def _say_complete(console: Console, name: str, report: Report) -> None:
    contacts = report.contacts
    detail = ", ".join(
        f"{contacts[key]} {key}"
        for key in ("completed", "failed", "invalid", "interrupted")
        if contacts[key]
    )
    hint = ", or --redial-interrupted." if contacts["interrupted"] else "."
    console.print(
        f"Campaign {name!r} is already complete ({detail}): nobody to call. "
        f"Use --fresh to start it over{hint}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _persist_transition(
    journal: SqliteJournal, clock: Clock
) -> Callable[[Transition], None]:
    """Breaker listener: the last state of each breaker, for ``callagent health``."""

    def save(transition: Transition) -> None:
        journal.status.save_breaker_state(
            transition.service, transition.new.value, format_timestamp(clock.now())
        )

    return save


def _persist_probe(
    journal: SqliteJournal, clock: Clock
) -> Callable[[ProbeResult], None]:
    def save(result: ProbeResult) -> None:
        journal.status.save_health(
            result.service,
            result.healthy,
            result.latency_ms,
            result.error,
            format_timestamp(clock.now()),
        )

    return save
