"""``callagent alerts test``: one test notification through each channel."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from callagent.alerts import ChannelTestResult, send_test
from callagent.commands.common import input_failure, settings_from
from callagent.errors import InputError
from callagent.report import EXIT_INCOMPLETE, EXIT_OK


def alerts_test(*, channel: str | None, settings_path: Path | None) -> None:
    try:
        settings = settings_from(settings_path)
        results = send_test(settings, channel=channel)
    except InputError as error:
        raise input_failure(error) from None
    console = Console()
    console.print(_table(results))
    if any(result.mode == "mock" for result in results):
        console.print(
            "mock channels wrote their notification to "
            f"{Path(settings.logging.dir) / 'alerts.jsonl'}; nothing was sent.",
            markup=False,
            highlight=False,
        )
    delivered = all(result.delivered for result in results)
    raise typer.Exit(EXIT_OK if delivered else EXIT_INCOMPLETE)


def _table(results: list[ChannelTestResult]) -> Table:
    table = Table(title="Alert channel test", title_justify="left")
    for column in ("Channel", "Mode", "Delivered", "Time", "Error"):
        table.add_column(column, justify="right" if column == "Time" else "left")
    for result in results:
        delivered = (
            Text("yes", style="green")
            if result.delivered
            else Text("no", style="bold red")
        )
        table.add_row(
            result.channel,
            result.mode,
            delivered,
            f"{result.duration_ms:.0f} ms",
            Text(result.error or "", overflow="fold"),
        )
    return table
