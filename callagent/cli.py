"""The ``callagent`` command line.

Exit codes (a contract scripts rely on): 0 every valid contact completed (for
``health``: every service healthy); 1 the campaign finished with failed, deferred or
interrupted contacts (or a service is unhealthy); 2 bad input or usage, nothing was
called; 130 interrupted by Ctrl-C after the journal and logs were flushed.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from loguru import logger
from rich.console import Console

from callagent import __version__
from callagent.campaign import Campaign, CampaignInterrupted, Hooks
from callagent.clock import VirtualClock
from callagent.dashboard import Dashboard
from callagent.errors import InputError
from callagent.journal import MemoryJournal
from callagent.report import EXIT_INPUT, EXIT_INTERRUPTED, Report
from callagent.services.simulated import simulated_services
from callagent.settings import (
    SERVICE_NAMES,
    Settings,
    load_settings,
    resolve_settings_path,
)
from callagent.simulation import (
    DEFAULT_CONTACTS,
    DEFAULT_ERROR_RATE,
    DEFAULT_LIVE_SPEED,
    DEFAULT_OUTAGE_START_S,
    FaultOptions,
    build_fault_plan,
    synthetic_contacts,
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Error recovery and resilience for AI call agents.",
)

SettingsOption = Annotated[
    Path | None,
    typer.Option(
        "--settings",
        help="Settings file. Default: $CALLAGENT_SETTINGS, else ./settings.yaml "
        "if it exists, else built-in defaults.",
        show_default=False,
    ),
]
JsonReportOption = Annotated[
    Path | None,
    typer.Option("--json-report", help="Also write the final report as JSON here."),
]
NoLiveOption = Annotated[
    bool,
    typer.Option("--no-live", help="Plain lines instead of the live view."),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"callagent {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Error recovery and resilience for AI call agents."""


def _settings(path: Path | None) -> Settings:
    return load_settings(resolve_settings_path(path))


def _fail_input(console: Console, error: InputError) -> typer.Exit:
    console.print(f"error: {error}", markup=False, highlight=False)
    return typer.Exit(EXIT_INPUT)


def _write_json_report(report: Report, path: Path | None) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report.as_json(), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(
            f"--json-report {path}: cannot write ({exc.strerror})"
        ) from exc


def _run_campaign(campaign: Campaign) -> Report:
    """Run to the end or to Ctrl-C; either way the books are closed."""
    try:
        return campaign.run()
    except CampaignInterrupted as stop:
        return stop.report
    finally:
        campaign.close()


def _conclude(console: Console, report: Report, json_report: Path | None) -> None:
    """Print and save the report, then exit with its code."""
    console.print(report.render())
    try:
        _write_json_report(report, json_report)
    except InputError as error:
        raise _fail_input(console, error) from None
    raise typer.Exit(report.exit_code())


@app.command()
def simulate(
    fail: Annotated[
        list[str] | None,
        typer.Option(
            "--fail",
            metavar="SERVICE[:MODE]",
            help="Make a service fail. SERVICE: crm, llm, elevenlabs. MODE: "
            "unavailable (default), timeout, network, rate_limited, auth, quota, "
            "invalid_payload, flaky. Repeatable.",
            show_default=False,
        ),
    ] = None,
    contacts: Annotated[
        int,
        typer.Option("--contacts", min=1, help="How many made-up contacts to call."),
    ] = DEFAULT_CONTACTS,
    contacts_file: Annotated[
        Path | None,
        typer.Option("--contacts-file", help="Call the contacts of this CSV instead."),
    ] = None,
    outage_start: Annotated[
        float,
        typer.Option("--outage-start", help="Virtual seconds before the fault starts."),
    ] = DEFAULT_OUTAGE_START_S,
    outage: Annotated[
        float | None,
        typer.Option(
            "--outage",
            help="Virtual seconds the fault lasts. Default: 120, except auth and "
            "quota, which last to the end of the run.",
            show_default=False,
        ),
    ] = None,
    error_rate: Annotated[
        float,
        typer.Option(
            "--error-rate",
            help="Share of requests hit in the window, for invalid_payload and flaky.",
        ),
    ] = DEFAULT_ERROR_RATE,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same events.")] = 0,
    speed: Annotated[
        float | None,
        typer.Option(
            "--speed",
            help="Play virtual time at this many times real time in the live view. "
            f"Default: {DEFAULT_LIVE_SPEED:g} in a terminal; without one, or with "
            "--no-live, as fast as possible.",
            show_default=False,
        ),
    ] = None,
    settings_path: SettingsOption = None,
    json_report: JsonReportOption = None,
    no_live: NoLiveOption = False,
) -> None:
    """Run a campaign against simulated services on a virtual clock."""
    console = Console()
    try:
        settings = _settings(settings_path)
        options = FaultOptions(tuple(fail or ()), outage_start, outage, error_rate)
        plan = build_fault_plan(options, seed=seed)
        if speed is not None and speed <= 0:
            raise InputError("--speed: must be > 0")
    except InputError as error:
        raise _fail_input(console, error) from None

    live = console.is_terminal and not no_live
    pace = speed if speed is not None else (DEFAULT_LIVE_SPEED if live else None)
    start = datetime.now(UTC).replace(microsecond=0)
    clock = VirtualClock(start, pace=pace if live or speed is not None else None)
    journal = MemoryJournal(contacts_file.stem if contacts_file else "simulation")
    try:
        if contacts_file is not None:
            _load_contacts_file(journal, contacts_file, settings)
        else:
            journal.add_contacts(synthetic_contacts(contacts))
    except InputError as error:
        raise _fail_input(console, error) from None

    services = simulated_services(settings, clock, plan, seed=seed)
    dashboard = Dashboard(
        console, live=live, clock=clock, counts=journal.counts, services=SERVICE_NAMES
    )
    hooks = Hooks(subscribers=[dashboard], on_wait=dashboard.on_wait)
    try:
        campaign = Campaign(
            command="simulate",
            settings=settings,
            clock=clock,
            journal=journal,
            services=services,
            seed=seed,
            hooks=hooks,
        )
    except InputError as error:
        raise _fail_input(console, error) from None
    with dashboard:
        report = _run_campaign(campaign)
    _conclude(console, report, json_report)


def _load_contacts_file(journal: MemoryJournal, path: Path, settings: Settings) -> None:
    raise InputError(f"{path}: contacts files are not supported yet")


def main() -> None:
    """Console-script entry point."""
    # The event log adds its own loguru sink; loguru's default stderr handler would
    # echo every event as text over the live view.
    logger.remove()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
