"""``callagent simulate``: a campaign on simulated services and a virtual clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from callagent.campaign import Campaign, Hooks
from callagent.clock import VirtualClock
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
from callagent.journal import MemoryJournal
from callagent.loading import load_into_memory
from callagent.services.simulated import simulated_services
from callagent.settings import SERVICE_NAMES
from callagent.simulation import (
    DEFAULT_LIVE_SPEED,
    FaultOptions,
    build_fault_plan,
    synthetic_contacts,
)


def simulate(
    *,
    faults: FaultOptions,
    contacts: int,
    contacts_file: Path | None,
    seed: int,
    speed: float | None,
    settings_path: Path | None,
    json_report: Path | None,
    no_live: bool,
) -> None:
    console = Console()
    try:
        # One call at a time: with a virtual clock, threads would make the order of
        # events, and so the seed's promise, depend on the scheduler.
        settings = settings_from(settings_path).with_workers(1)
        plan = build_fault_plan(faults, seed=seed)
        if speed is not None and speed <= 0:
            raise InputError("--speed: must be > 0")
        reader = (
            read_contacts(
                contacts_file, default_region=settings.contacts.default_region
            )
            if contacts_file is not None
            else None
        )
    except InputError as error:
        raise input_failure(error) from None

    live = console.is_terminal and not no_live
    pace = speed if speed is not None else (DEFAULT_LIVE_SPEED if live else None)
    start = datetime.now(UTC).replace(microsecond=0)
    clock = VirtualClock(start, pace=pace if live or speed is not None else None)
    journal = MemoryJournal(contacts_file.stem if contacts_file else "simulation")
    if reader is None:
        journal.add_contacts(synthetic_contacts(contacts))

    services = simulated_services(settings, clock, plan, seed=seed)
    dashboard = Dashboard(
        console, live=live, clock=clock, counts=journal.counts, services=SERVICE_NAMES
    )
    try:
        campaign = Campaign(
            command="simulate",
            settings=settings,
            clock=clock,
            journal=journal,
            services=services,
            seed=seed,
            hooks=Hooks(subscribers=[dashboard], on_wait=dashboard.on_wait),
        )
    except InputError as error:
        services.close()
        raise input_failure(error) from None
    if reader is not None:
        try:
            load_into_memory(journal, reader, campaign.events)
        except InputError as error:
            campaign.close()
            raise input_failure(error) from None

    with SigtermAsInterrupt(), dashboard:
        report = run_campaign(campaign)
    conclude(console, report, json_report)
