"""What every command shares: settings, input errors, running and reporting."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from types import FrameType, TracebackType
from typing import NoReturn

import typer
from rich.console import Console

from callagent.campaign import Campaign, CampaignInterrupted
from callagent.errors import CallAgentError, InputError, StorageError
from callagent.report import EXIT_INCOMPLETE, EXIT_INPUT, Report
from callagent.settings import Settings, load_settings, resolve_settings_path


def settings_from(path: Path | None) -> Settings:
    """The settings that apply: --settings, then $CALLAGENT_SETTINGS, then ./."""
    return load_settings(resolve_settings_path(path))


def input_failure(error: InputError) -> typer.Exit:
    """Say what is wrong on stderr, in one line; the exit to raise (code 2)."""
    _say_error(error)
    return typer.Exit(EXIT_INPUT)


def _say_error(error: CallAgentError) -> None:
    # soft_wrap: one line whatever the terminal width, so a script can read it.
    Console(stderr=True).print(
        f"error: {error}", markup=False, highlight=False, soft_wrap=True
    )


def run_campaign(campaign: Campaign) -> Report:
    """Run to the end or to Ctrl-C; either way the books are closed.

    A failure of our own storage (the journal, the audio directory) stops the run
    with one line and exit code 1: going on would lose what it could not write.
    """
    try:
        return campaign.run()
    except CampaignInterrupted as stop:
        return stop.report
    except StorageError as error:
        _say_error(error)
        raise typer.Exit(EXIT_INCOMPLETE) from None
    finally:
        campaign.close()


def conclude(console: Console, report: Report, json_report: Path | None) -> NoReturn:
    """Print and save the report, then exit with its code."""
    console.print(report.render())
    if json_report is not None:
        try:
            json_report.parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps(report.as_json(), indent=2) + "\n"
            json_report.write_text(text, encoding="utf-8")
        except OSError as exc:
            error = InputError(f"--json-report {json_report}: cannot write ({exc})")
            raise input_failure(error) from None
    raise typer.Exit(report.exit_code())


class SigtermAsInterrupt:
    """SIGTERM stops a campaign the way Ctrl-C does: books closed, exit 130."""

    def __enter__(self) -> None:
        self._previous = signal.signal(signal.SIGTERM, self._raise)

    @staticmethod
    def _raise(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        signal.signal(signal.SIGTERM, self._previous)
