"""``callagent health`` against loopback servers speaking each provider's API."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.test_classify import ELEVENLABS_ROWS
from tests.test_e2e_real_adapters import (
    KEYS,
    PROBE_PATHS,
    PROVIDERS,
    FailFirst,
    Providers,
    fake_providers,
    invoke,
    quota_spent,
    row_response,
    run_campaign,
    running_servers,
    unavailable,
    write_settings,
)

SERVICES = tuple(PROVIDERS)
FIELDS = {"healthy", "latency_ms", "circuit_state", "error"}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, HTTPServer]]:
    yield from running_servers()


@pytest.fixture
def providers(
    servers: dict[str, HTTPServer], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Providers]:
    yield from fake_providers(servers, monkeypatch)


def table_rows(output: str) -> dict[str, list[str]]:
    """The health table's body rows as cells, by service name."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in re.split(r"[│|]", line)[1:-1]]
        if cells and cells[0] in SERVICES:
            rows[cells[0]] = cells
    return rows


def key_rejected(request: Request) -> Response:
    return row_response(ELEVENLABS_ROWS, "401-invalid_api_key")


def test_all_healthy_exits_0_with_a_table(providers: Providers, tmp_path: Path) -> None:
    """Every probe passes: exit 0, one row per service, healthy and CLOSED."""
    result = invoke("health", "--settings", str(write_settings(tmp_path, providers)))

    assert result.exit_code == 0
    assert result.stdout.startswith("Service health")
    rows = table_rows(result.stdout)
    assert list(rows) == list(SERVICES)
    for service, provider in PROVIDERS.items():
        name, shown_provider, healthy, latency, circuit, error = rows[service]
        assert (name, shown_provider, healthy, circuit, error) == (
            service,
            provider,
            "yes",
            "CLOSED",
            "",
        )
        assert re.fullmatch(r"\d+ ms", latency)
    assert "\x1b[" not in result.stdout
    for service, path in PROBE_PATHS.items():
        probes = providers[service].requests()
        assert [(r.method, r.path) for r in probes] == [("GET", path)]
    # With no campaign run here, health has no journal to read and makes none.
    assert not (tmp_path / ".callagent").exists()


def test_one_unhealthy_service_exits_1_with_its_classified_error(
    providers: Providers, tmp_path: Path
) -> None:
    """A rejected ElevenLabs key: exit 1, that row unhealthy with its error."""
    providers.elevenlabs.fault = key_rejected

    result = invoke("health", "--settings", str(write_settings(tmp_path, providers)))

    assert result.exit_code == 1
    rows = table_rows(result.stdout)
    assert rows["elevenlabs"][2] == "no"
    assert rows["elevenlabs"][5] == "elevenlabs 401 invalid_api_key: Invalid API key"
    assert [rows[service][2] for service in ("crm", "llm")] == ["yes", "yes"]


def test_json_prints_only_the_document(providers: Providers, tmp_path: Path) -> None:
    """--json: stdout is exactly the DESIGN.md document, nothing on stderr."""
    providers.llm.fault = quota_spent
    settings = write_settings(tmp_path, providers)

    result = invoke("health", "--settings", str(settings), "--json")

    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert list(document) == ["services"]
    services = document["services"]
    assert list(services) == list(SERVICES)
    assert all(set(check) == FIELDS for check in services.values())
    assert services["llm"]["healthy"] is False
    assert services["llm"]["error"] == (
        "llm 429 insufficient_quota: You exceeded your current quota, please check "
        "your plan and billing details."
    )
    for service in ("crm", "elevenlabs"):
        assert services[service]["healthy"] is True
        assert services[service]["error"] is None
    for check in services.values():
        assert isinstance(check["latency_ms"], float)
        assert check["circuit_state"] == "CLOSED"
    assert result.stderr == ""


@pytest.mark.parametrize("variable", list(KEYS))
def test_missing_key_exits_2_naming_the_variable(
    providers: Providers,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    """A real provider whose key variable is unset: exit 2 naming it, no probe."""
    monkeypatch.delenv(variable)

    result = invoke("health", "--settings", str(write_settings(tmp_path, providers)))

    assert result.exit_code == 2
    assert f"environment variable {variable} is not set" in result.output
    assert "Traceback" not in result.output
    assert all(providers[service].requests() == [] for service in SERVICES)


def test_circuit_column_shows_the_state_a_run_left(
    providers: Providers, tmp_path: Path
) -> None:
    """After a run that left the LLM breaker OPEN, health shows OPEN for it."""
    providers.llm.fault = quota_spent
    settings = write_settings(tmp_path, providers, {"campaign": {"max_wait_s": 0.1}})
    assert run_campaign(tmp_path, settings)[0].exit_code == 1
    # The quota is topped up: the probe passes, yet the journal's last word on
    # the breaker is still that it was left open.
    providers.llm.fault = None

    result = invoke("health", "--settings", str(settings), "--json")
    table = invoke("health", "--settings", str(settings))

    assert result.exit_code == 0
    services = json.loads(result.stdout)["services"]
    assert {name: check["circuit_state"] for name, check in services.items()} == {
        "crm": "CLOSED",
        "llm": "OPEN",
        "elevenlabs": "CLOSED",
    }
    assert services["llm"]["healthy"] is True
    assert table_rows(table.stdout)["llm"][4] == "OPEN"


def test_circuit_column_shows_a_breaker_closed_again(
    providers: Providers, tmp_path: Path
) -> None:
    """A breaker that opened and closed during the run shows CLOSED afterwards."""
    providers.elevenlabs.fault = FailFirst(4, unavailable)
    settings = write_settings(tmp_path, providers)
    assert run_campaign(tmp_path, settings)[0].exit_code == 0

    result = invoke("health", "--settings", str(settings), "--json")

    assert result.exit_code == 0
    services = json.loads(result.stdout)["services"]
    assert services["elevenlabs"]["circuit_state"] == "CLOSED"


def test_default_settings_are_simulated_and_healthy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No settings file and no keys: three simulated services, exit 0."""
    for variable in KEYS:
        monkeypatch.delenv(variable, raising=False)

    result = invoke("health")

    assert result.exit_code == 0
    rows = table_rows(result.stdout)
    assert {service: rows[service][1:3] for service in SERVICES} == {
        service: ["simulated", "yes"] for service in SERVICES
    }
