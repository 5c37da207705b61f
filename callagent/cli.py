"""The ``callagent`` command line.

Exit codes (a contract scripts rely on): 0 every valid contact completed (for
``health``: every service healthy); 1 the campaign finished with failed, deferred or
interrupted contacts (or a service is unhealthy); 2 bad input or usage, nothing was
called; 130 interrupted by Ctrl-C after the journal and logs were flushed.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from loguru import logger
from rich.console import Console
from rich.table import Table
from rich.text import Text

from callagent import __version__, healthcheck
from callagent.alerts import send_test
from callagent.breaker import Transition
from callagent.campaign import Campaign, CampaignInterrupted, Hooks
from callagent.clock import Clock, SystemClock, VirtualClock
from callagent.contacts import read_contacts
from callagent.dashboard import Dashboard
from callagent.errors import CallAgentError, InputError
from callagent.events import format_timestamp
from callagent.health import ProbeResult
from callagent.journal import MemoryJournal, SqliteJournal
from callagent.loading import load_into_memory, load_into_sqlite
from callagent.report import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, Report
from callagent.services.factory import build_services
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
        # One call at a time: with a virtual clock, threads would make the order of
        # events, and so the seed's promise, depend on the scheduler.
        settings = _settings(settings_path).with_workers(1)
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
        reader = (
            read_contacts(
                contacts_file, default_region=settings.contacts.default_region
            )
            if contacts_file is not None
            else None
        )
        if reader is None:
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
        services.close()
        raise _fail_input(console, error) from None
    if reader is not None:
        try:
            load_into_memory(journal, reader, campaign.events)
        except InputError as error:
            campaign.close()
            raise _fail_input(console, error) from None
    with _stop_on_sigterm(), dashboard:
        report = _run_campaign(campaign)
    _conclude(console, report, json_report)


@app.command()
def run(
    contacts: Annotated[
        Path,
        typer.Argument(help="Contacts CSV with a phone column (UTF-8, header row)."),
    ],
    settings_path: SettingsOption = None,
    campaign_name: Annotated[
        str | None,
        typer.Option(
            "--campaign",
            help="Campaign name in the journal. Default: the contacts file's stem.",
            show_default=False,
        ),
    ] = None,
    fresh: Annotated[
        bool,
        typer.Option("--fresh", help="Start the campaign over, forgetting its state."),
    ] = False,
    redial_interrupted: Annotated[
        bool,
        typer.Option(
            "--redial-interrupted",
            help="Call again contacts whose call was cut off after dialling.",
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Calls in flight at once. Default: campaign.workers from settings.",
            show_default=False,
        ),
    ] = None,
    json_report: JsonReportOption = None,
    no_live: NoLiveOption = False,
) -> None:
    """Call every contact of CONTACTS, resuming the campaign if it ran before."""
    console = Console()
    clock = SystemClock()
    try:
        settings = _settings(settings_path)
        if workers is not None:
            settings = settings.with_workers(workers)
        reader = read_contacts(
            contacts, default_region=settings.contacts.default_region
        )
        services = build_services(settings, clock)
    except InputError as error:
        raise _fail_input(console, error) from None
    try:
        journal = SqliteJournal.open(
            settings.storage.path,
            campaign_name or contacts.stem,
            fresh=fresh,
            redial_interrupted=redial_interrupted,
        )
    except InputError as error:
        services.close()
        raise _fail_input(console, error) from None

    live = console.is_terminal and not no_live
    dashboard = Dashboard(
        console, live=live, clock=clock, counts=journal.counts, services=SERVICE_NAMES
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
        raise _fail_input(console, error) from None
    try:
        load_into_sqlite(journal, reader, campaign.events)
    except InputError as error:
        _close_run(campaign, journal)
        raise _fail_input(console, error) from None

    if journal.is_complete():
        report = campaign.report()
        _close_run(campaign, journal)
        _say_complete(console, journal.campaign, report)
        _conclude(console, report, json_report)
    with _stop_on_sigterm(), dashboard:
        try:
            report = _run_campaign(campaign)
        finally:
            journal.close()
    _conclude(console, report, json_report)


def _close_run(campaign: Campaign, journal: SqliteJournal) -> None:
    campaign.close()
    journal.close()


def _say_complete(console: Console, name: str, report: Report) -> None:
    contacts = report.contacts
    detail = ", ".join(
        f"{contacts[key]} {key}"
        for key in ("completed", "failed", "invalid", "interrupted")
        if contacts[key]
    )
    console.print(
        f"Campaign {name!r} is already complete ({detail}): nobody to call. "
        "Use --fresh to start it over"
        + (", or --redial-interrupted." if contacts["interrupted"] else "."),
        markup=False,
        highlight=False,
    )


def _persist_transition(
    journal: SqliteJournal, clock: Clock
) -> Callable[[Transition], None]:
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


@app.command()
def health(
    settings_path: SettingsOption = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print only the JSON document on stdout."),
    ] = False,
) -> None:
    """Probe every configured service once; exit 1 if any is unhealthy."""
    console = Console()
    clock = SystemClock()
    try:
        settings = _settings(settings_path)
        services = build_services(settings, clock)
    except InputError as error:
        raise _fail_input(console, error) from None
    try:
        checks = healthcheck.check_services(
            services, clock, state_db=Path(settings.storage.path)
        )
    finally:
        services.close()
    if as_json:
        typer.echo(json.dumps(healthcheck.as_json(checks), indent=2))
    else:
        console.print(healthcheck.render(checks))
    healthy = all(check.probe.healthy for check in checks)
    raise typer.Exit(EXIT_OK if healthy else 1)


alerts_app = typer.Typer(help="Alert channels.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("test")
def alerts_test(
    channel: Annotated[
        str | None,
        typer.Option(
            "--channel",
            help="Only this channel: email, telegram or webhook. Default: all.",
            show_default=False,
        ),
    ] = None,
    settings_path: SettingsOption = None,
) -> None:
    """Send one test notification through each configured channel."""
    console = Console()
    try:
        settings = _settings(settings_path)
        results = send_test(settings, channel=channel)
    except InputError as error:
        raise _fail_input(console, error) from None
    table = Table(title="Alert channel test", title_justify="left")
    for column in ("Channel", "Mode", "Delivered", "Time", "Error"):
        table.add_column(column, justify="right" if column == "Time" else "left")
    for result in results:
        table.add_row(
            result.channel,
            result.mode,
            Text("yes", style="green")
            if result.delivered
            else Text("no", style="bold red"),
            f"{result.duration_ms:.0f} ms",
            Text(result.error or "", overflow="fold"),
        )
    console.print(table)
    if any(result.mode == "mock" for result in results):
        console.print(
            "mock channels wrote their notification to "
            f"{Path(settings.logging.dir) / 'alerts.jsonl'}; nothing was sent.",
            markup=False,
            highlight=False,
        )
    raise typer.Exit(EXIT_OK if all(r.delivered for r in results) else 1)


class _SigtermAsInterrupt:
    """SIGTERM stops a campaign the way Ctrl-C does: books closed, exit 130."""

    def __enter__(self) -> None:
        self._previous = signal.signal(signal.SIGTERM, self._raise)

    @staticmethod
    def _raise(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGTERM, self._previous)


def _stop_on_sigterm() -> _SigtermAsInterrupt:
    return _SigtermAsInterrupt()


def main() -> None:
    """Console-script entry point."""
    # The event log adds its own loguru sink; loguru's default stderr handler would
    # echo every event as text over the live view.
    logger.remove()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except CallAgentError as error:
        # Expected failures that stop a run midway (the state database failing);
        # the message names the file, and no traceback reaches the user.
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
