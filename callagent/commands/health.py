"""``callagent health``: probe every configured service once."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from callagent import healthcheck
from callagent.clock import SystemClock
from callagent.commands.common import input_failure, settings_from
from callagent.errors import InputError
from callagent.report import EXIT_INCOMPLETE, EXIT_OK
from callagent.services.factory import build_services


def health(*, settings_path: Path | None, as_json: bool) -> None:
    clock = SystemClock()
    try:
        settings = settings_from(settings_path)
        services = build_services(settings, clock)
    except InputError as error:
        raise input_failure(error) from None
    try:
        checks = healthcheck.check_services(
            services, clock, state_db=Path(settings.storage.path)
        )
    finally:
        services.close()
    if as_json:
        typer.echo(json.dumps(healthcheck.as_json(checks), indent=2))
    else:
        Console().print(healthcheck.render(checks))
    healthy = all(check.probe.healthy for check in checks)
    raise typer.Exit(EXIT_OK if healthy else EXIT_INCOMPLETE)
