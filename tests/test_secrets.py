"""Keys set in the environment appear in nothing a run or a health check leaves.

Each scenario runs the real command in a child process, so that what is checked is
everything a person or a log collector would see: stdout, stderr, the log files,
the alerts log, the JSON report, the journal and the audio file names. The servers
fail in ways that put a key within reach of a message: an error body quoting the
key, a base URL carrying it in its path, a timeout or a refused connection on such
a URL, a Telegram API that quotes its request path (which holds the bot token).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.conftest import free_port
from tests.test_e2e_real_adapters import (
    CONSOLE_ENV,
    Providers,
    fake_providers,
    json_response,
    merged,
    running_servers,
    write_contacts,
    write_settings,
)

SECRETS = {
    "HUBSPOT_TOKEN": "pat-na1-5ec12e70-dead-beef-cafe-5ec12e7c0de1",
    "OPENAI_API_KEY": "sk-proj-SECRETopenaiKEY0123456789abcdefWXYZ",
    "ELEVENLABS_API_KEY": "sk_5ec12e7e1e7e7ab5a1b2c3d4e5f60718293a4b5c6d7e8f",
    "TELEGRAM_BOT_TOKEN": "7123456789:AAsecretTelegramBotToken0123456789xyz",
    "WEBHOOK_SECRET": "whsec_"
    + base64.b64encode(b"SECRET-webhook-signing-key-0123").decode(),
}
HUB = SECRETS["HUBSPOT_TOKEN"]
OPENAI_KEY = SECRETS["OPENAI_API_KEY"]
ELEVEN_KEY = SECRETS["ELEVENLABS_API_KEY"]
TELEGRAM_TOKEN = SECRETS["TELEGRAM_BOT_TOKEN"]


def needles() -> list[str]:
    """Each secret whole, and a stretch from its middle to catch partial leaks."""
    found = []
    for value in SECRETS.values():
        found += [value, value[8:24]]
    return found


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, HTTPServer]]:
    yield from running_servers()


@pytest.fixture
def providers(
    servers: dict[str, HTTPServer], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Providers]:
    """Healthy providers, with the recognisable secrets in the environment."""
    for fakes in fake_providers(servers, monkeypatch):
        for variable, value in SECRETS.items():
            monkeypatch.setenv(variable, value)
        yield fakes


class Stall:
    """A fault that holds every request until released: the client times out."""

    def __init__(self) -> None:
        self._release = threading.Event()

    def __call__(self, request: Request) -> Response:
        self._release.wait(timeout=10)
        return Response("too late", status=504)

    def release(self) -> None:
        self._release.set()


@pytest.fixture
def stall() -> Iterator[Stall]:
    fault = Stall()
    yield fault
    fault.release()


# How each provider would quote a key back, at its worst.


def openai_quotes_key(request: Request) -> Response:
    message = (
        f"Incorrect API key provided: {OPENAI_KEY}. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )
    error = {"message": message, "type": "invalid_request_error", "param": None}
    return json_response({"error": {**error, "code": "invalid_api_key"}}, 401)


def hubspot_quotes_token(request: Request) -> Response | None:
    if not request.path.endswith("/crm/v3/objects/calls"):
        return None
    return json_response(
        {
            "status": "error",
            "message": f"Authentication credentials not found: {HUB} ({request.path})",
            "correlationId": "c033cdaa-2c40-4a64-ae48-b4cec88dad24",
            "category": "INVALID_AUTHENTICATION",
        },
        401,
    )


def elevenlabs_quotes_key(request: Request) -> Response:
    detail = {"status": "invalid_api_key", "message": f"Invalid API key: {ELEVEN_KEY}"}
    return json_response({"detail": detail}, 401)


def telegram_quotes_path(request: Request) -> Response:
    description = f"Not Found: method {request.path} does not exist"
    return json_response(
        {"ok": False, "error_code": 404, "description": description}, 404
    )


Arrange = Callable[[Providers, Stall], dict[str, Any]]


@dataclass(frozen=True)
class Scenario:
    """Faults to set (returning the settings they need), and what the log shows."""

    arrange: Arrange
    service: str
    error: str
    #: Whether calls get as far as their speech, leaving audio files to check.
    makes_audio: bool = False


def openai_key_quoted(providers: Providers, stall: Stall) -> dict[str, Any]:
    providers.llm.fault = openai_quotes_key
    return {}


def hubspot_token_quoted_and_in_url(
    providers: Providers, stall: Stall
) -> dict[str, Any]:
    # Only the outcome record is refused, so every call gets its speech first.
    providers.crm.prefix = f"/{HUB}"
    providers.crm.fault = hubspot_quotes_token
    return {}


def elevenlabs_timeout_on_url_with_key(
    providers: Providers, stall: Stall
) -> dict[str, Any]:
    providers.elevenlabs.prefix = f"/{ELEVEN_KEY}"
    providers.elevenlabs.fault = stall
    return {"services": {"elevenlabs": {"timeout_s": 0.2}}}


def hubspot_refused_on_url_with_token(
    providers: Providers, stall: Stall
) -> dict[str, Any]:
    base_url = f"http://127.0.0.1:{free_port()}/{HUB}/api"
    return {"services": {"crm": {"base_url": base_url}}}


SCENARIOS = [
    pytest.param(
        Scenario(openai_key_quoted, "llm", "AuthenticationFailed"), id="openai-401"
    ),
    pytest.param(
        Scenario(
            hubspot_token_quoted_and_in_url,
            "crm",
            "AuthenticationFailed",
            makes_audio=True,
        ),
        id="hubspot-401-token-in-url",
    ),
    pytest.param(
        Scenario(elevenlabs_timeout_on_url_with_key, "elevenlabs", "ServiceTimeout"),
        id="elevenlabs-timeout-key-in-url",
    ),
    pytest.param(
        Scenario(hubspot_refused_on_url_with_token, "crm", "NetworkError"),
        id="hubspot-refused-token-in-url",
    ),
]


def callagent(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command in a child process, as a user or a cron job would run it."""
    return subprocess.run(
        [sys.executable, "-m", "callagent", *args],
        cwd=directory,
        env={**os.environ, **CONSOLE_ENV},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_failing(
    directory: Path, providers: Providers, extra: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    """``callagent run`` with waits short enough for a service that stays down."""
    # A log rotated every few kilobytes, so that rotated files are checked too.
    quick = {"campaign": {"max_wait_s": 0.3}, "logging": {"rotation_mb": 0.002}}
    settings = write_settings(directory, providers, merged(quick, extra))
    contacts = write_contacts(directory)
    return callagent(
        directory, "run", str(contacts), "--settings", str(settings),
        "--json-report", "report.json", "--no-live",
    )  # fmt: skip


def everything_left(
    directory: Path, process: subprocess.CompletedProcess[str]
) -> dict[str, str]:
    """What the run left for anyone to read, by where it was found."""
    left = {"stdout": process.stdout, "stderr": process.stderr}
    for path in sorted(directory.rglob("*")):
        relative = str(path.relative_to(directory))
        left[f"name of {relative}"] = relative
        if path.is_file() and path.name not in {"settings.yaml", "contacts.csv"}:
            left[relative] = path.read_bytes().decode("utf-8", "replace")
    return left


def leaks(left: dict[str, str]) -> list[tuple[str, str]]:
    """(where, which secret) for every secret found anywhere."""
    return [
        (where, needle)
        for where, text in left.items()
        for needle in needles()
        if needle in text
    ]


def service_errors(directory: Path, service: str) -> set[str]:
    """The error classes of the service's failed requests, rotated logs included."""
    lines = [
        json.loads(line)
        for path in (directory / "logs").glob("system*.log")
        for line in path.read_text("utf-8").splitlines()
    ]
    return {
        line["error"]
        for line in lines
        if line["event"] == "service_error" and line["service"] == service
    }


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_failing_run_leaves_no_secret_anywhere(
    providers: Providers, stall: Stall, tmp_path: Path, scenario: Scenario
) -> None:
    """Exit 1, and no key in the console, logs, alerts, report, journal, audio."""
    process = run_failing(tmp_path, providers, scenario.arrange(providers, stall))

    assert process.returncode == 1
    assert service_errors(tmp_path, scenario.service) == {scenario.error}
    left = everything_left(tmp_path, process)
    assert {"logs/system.log", "logs/sheets.csv", "logs/alerts.jsonl"} <= set(left)
    assert "report.json" in left
    # The directory is made before any call; files appear only for spoken calls.
    assert any((tmp_path / "audio").iterdir()) is scenario.makes_audio
    assert len(list((tmp_path / "logs").glob("system*.log"))) > 1
    assert leaks(left) == []


def test_live_alert_channels_leave_no_secret(
    providers: Providers, httpserver: HTTPServer, tmp_path: Path
) -> None:
    """Failing live Telegram and webhook deliveries leave no token or secret."""
    httpserver.expect_request(f"/bot{TELEGRAM_TOKEN}/sendMessage").respond_with_handler(
        telegram_quotes_path
    )
    providers.llm.fault = openai_quotes_key
    channels = {
        "telegram": {"mode": "live", "base_url": httpserver.url_for("/").rstrip("/")},
        "webhook": {"mode": "live", "url": f"http://127.0.0.1:{free_port()}/hook"},
    }

    process = run_failing(tmp_path, providers, {"alerts": {"channels": channels}})

    assert process.returncode == 1
    report = json.loads((tmp_path / "report.json").read_text("utf-8"))
    assert report["alerts"]["failed"] >= 2
    assert len(httpserver.log) >= 1
    httpserver.check_assertions()
    assert leaks(everything_left(tmp_path, process)) == []


def break_every_probe(providers: Providers) -> dict[str, Any]:
    """Every service's probe fails in a way that could quote its key."""
    providers.llm.fault = openai_quotes_key
    providers.elevenlabs.prefix = f"/{ELEVEN_KEY}"
    providers.elevenlabs.fault = elevenlabs_quotes_key
    base_url = f"http://127.0.0.1:{free_port()}/{HUB}"
    return {"services": {"crm": {"base_url": base_url}}}


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_health_with_failing_services_leaves_no_secret(
    providers: Providers, tmp_path: Path, as_json: bool
) -> None:
    """health and health --json name each failure, never the key behind it."""
    settings = write_settings(tmp_path, providers, break_every_probe(providers))

    process = callagent(
        tmp_path,
        "health",
        "--settings",
        str(settings),
        *(["--json"] if as_json else []),
    )

    assert process.returncode == 1
    if as_json:
        services = json.loads(process.stdout)["services"]
        assert {name: check["healthy"] for name, check in services.items()} == {
            "crm": False,
            "llm": False,
            "elevenlabs": False,
        }
        assert services["llm"]["error"].startswith("llm 401 invalid_api_key:")
    assert leaks(everything_left(tmp_path, process)) == []
