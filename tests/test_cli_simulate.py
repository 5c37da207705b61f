"""``callagent simulate`` through the real command: exit codes, output, files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callagent import __version__
from callagent.cli import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def log_trace(path: Path, run_index: int) -> list[tuple[str, str | None, str | None]]:
    lines = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    run_ids = list(dict.fromkeys(line["run_id"] for line in lines))
    wanted = run_ids[run_index]
    return [
        (line["event"], line["call_id"], line["service"])
        for line in lines
        if line["run_id"] == wanted
    ]


class TestOutage:
    def test_elevenlabs_outage_recovers_and_exits_0(self, tmp_path: Path) -> None:
        """The default outage shows backoff, opening, recovery, and a full report."""
        code, out = invoke(
            "simulate", "--fail", "elevenlabs", "--no-live",
            "--json-report", "report.json",
        )  # fmt: skip
        assert code == 0
        assert "retry_scheduled elevenlabs CALL_" in out
        assert "circuit_opened elevenlabs" in out
        assert "circuit_closed elevenlabs" in out
        assert "Campaign 'simulation'" in out
        assert "\x1b[" not in out
        report = json.loads((tmp_path / "report.json").read_text("utf-8"))
        assert report["command"] == "simulate"
        assert report["contacts"]["total"] == 30
        assert report["contacts"]["completed"] == 30
        assert set(report["services"]) == {"crm", "llm", "elevenlabs"}
        assert set(report["services"]["elevenlabs"]) == {
            "requests", "failures", "retries", "times_opened", "circuit_state",
        }  # fmt: skip
        assert set(report["alerts"]) == {"sent", "failed", "suppressed"}
        assert (tmp_path / "logs" / "system.log").is_file()
        assert (tmp_path / "logs" / "sheets.csv").is_file()
        assert (tmp_path / "logs" / "alerts.jsonl").is_file()

    def test_auth_failure_exits_1(self) -> None:
        """A revoked key leaves contacts deferred: exit code 1."""
        code, out = invoke("simulate", "--fail", "elevenlabs:auth", "--no-live")
        assert code == 1
        assert "call_failed elevenlabs CALL_" in out
        assert "retry_scheduled" not in out

    def test_same_seed_gives_the_same_event_sequence(self, tmp_path: Path) -> None:
        """Two runs with one seed log the same (event, call_id, service) lines."""
        args = ("simulate", "--fail", "llm:flaky", "--error-rate", "0.3",
                "--seed", "11", "--contacts", "40", "--no-live")  # fmt: skip
        assert invoke(*args)[0] in {0, 1}
        assert invoke(*args)[0] in {0, 1}
        log = tmp_path / "logs" / "system.log"
        first, second = log_trace(log, 0), log_trace(log, 1)
        assert first == second
        assert any(event == "retry_scheduled" for event, _, _ in first)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--fail", "sms"), "--fail 'sms': unknown service"),
        (("--fail", "llm:boom"), "unknown mode 'boom'"),
        (("--error-rate", "1.5"), "--error-rate: must be > 0 and <= 1"),
        (("--outage", "0"), "--outage: must be > 0"),
        (("--speed", "-1"), "--speed: must be > 0"),
        (("--settings", "missing.yaml"), "missing.yaml: settings file not found"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(
    args: tuple[str, ...], message: str
) -> None:
    """Bad options exit 2 with a message naming what is wrong and no traceback."""
    code, out = invoke("simulate", "--no-live", *args)
    assert code == 2
    assert message in out
    assert "Traceback" not in out


def test_invalid_settings_name_the_key(tmp_path: Path) -> None:
    """A wrong settings value exits 2 naming the key path."""
    (tmp_path / "settings.yaml").write_text("retry:\n  max_retries: -1\n", "utf-8")
    code, out = invoke("simulate", "--no-live")
    assert code == 2
    assert "retry.max_retries: must be >= 0" in out


def test_version() -> None:
    """--version prints the version and exits 0."""
    assert invoke("--version") == (0, f"callagent {__version__}\n")


def test_help_documents_options_and_defaults() -> None:
    """simulate --help lists every option and the outage defaults."""
    code, out = invoke("simulate", "--help")
    assert code == 0
    for option in ("--fail", "--contacts", "--contacts-file", "--outage-start",
                   "--outage", "--error-rate", "--seed", "--speed", "--settings",
                   "--json-report", "--no-live"):  # fmt: skip
        assert option in out
    assert "120" in out
