"""The ``callagent`` command line: its commands and options.

Exit codes (a contract scripts rely on): 0 every valid contact completed (for
``health``: every service healthy); 1 the campaign finished with failed, deferred or
interrupted contacts (or a service is unhealthy); 2 bad input or usage, nothing was
called; 130 interrupted by Ctrl-C after the journal and logs were flushed.

Each command's body is in :mod:`callagent.commands`; this module only declares them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from loguru import logger

from callagent import __version__
from callagent.commands.alerts import alerts_test as _alerts_test
from callagent.commands.health import health as _health
from callagent.commands.run import run as _run
from callagent.commands.simulate import simulate as _simulate
from callagent.errors import CallAgentError
from callagent.report import EXIT_INCOMPLETE, EXIT_INTERRUPTED
from callagent.simulation import (
    DEFAULT_CONTACTS,
    DEFAULT_ERROR_RATE,
    DEFAULT_LIVE_SPEED,
    DEFAULT_OUTAGE_START_S,
    FaultOptions,
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Error recovery and resilience for AI call agents.",
)
alerts_app = typer.Typer(help="Alert channels.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")

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
    _run(
        contacts=contacts,
        settings_path=settings_path,
        campaign_name=campaign_name,
        fresh=fresh,
        redial_interrupted=redial_interrupted,
        workers=workers,
        json_report=json_report,
        no_live=no_live,
    )


@app.command()
def health(
    settings_path: SettingsOption = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print only the JSON document on stdout."),
    ] = False,
) -> None:
    """Probe every configured service once; exit 1 if any is unhealthy."""
    _health(settings_path=settings_path, as_json=as_json)


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
    """Run a campaign against simulated services on a virtual clock.

    Calls run one at a time whatever campaign.workers says, so the same seed and
    settings give the same events.
    """
    _simulate(
        faults=FaultOptions(tuple(fail or ()), outage_start, outage, error_rate),
        contacts=contacts,
        contacts_file=contacts_file,
        seed=seed,
        speed=speed,
        settings_path=settings_path,
        json_report=json_report,
        no_live=no_live,
    )


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
    _alerts_test(channel=channel, settings_path=settings_path)


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
        sys.exit(EXIT_INCOMPLETE)
