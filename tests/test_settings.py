"""Settings: defaults, per-service overrides and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from callagent.errors import InputError
from callagent.settings import (
    Settings,
    load_settings,
    parse_settings,
    resolve_settings_path,
)

REPO = Path(__file__).resolve().parents[1]


class TestDefaults:
    def test_defaults_are_the_documented_contract(self) -> None:
        """The built-in defaults are those DESIGN.md fixes."""
        s = Settings()
        assert (s.retry.max_retries, s.retry.initial_delay_s) == (3, 5)
        assert (s.retry.multiplier, s.retry.max_delay_s, s.retry.jitter_s) == (2, 20, 0)
        breaker = s.circuit_breaker
        assert breaker.failure_threshold == 4
        assert breaker.recovery_timeout_s == 60
        assert (breaker.half_open_max_calls, breaker.success_threshold) == (1, 1)
        assert s.health_check.interval_s == 30
        assert (s.campaign.max_call_attempts, s.campaign.max_wait_s) == (3, 900)
        assert s.storage.path == ".callagent/state.db"
        assert s.logging.dir == "logs"
        assert set(s.services) == {"elevenlabs", "llm", "crm"}
        assert all(svc.provider == "simulated" for svc in s.services.values())

    def test_shipped_settings_file_equals_the_defaults(self) -> None:
        """The documented settings.yaml holds exactly the built-in defaults."""
        assert load_settings(REPO / "settings.yaml") == Settings()


class TestOverrides:
    def test_service_override_merges_over_top_level(self) -> None:
        """A service's retry override changes only the keys it names."""
        s = parse_settings({"services": {"llm": {"retry": {"max_retries": 5}}}})
        assert s.retry_for("llm").max_retries == 5
        assert s.retry_for("llm").initial_delay_s == 5
        assert s.retry_for("crm").max_retries == 3

    def test_breaker_override_merges_over_top_level(self) -> None:
        """A service's breaker override keeps the other top-level values."""
        s = parse_settings(
            {
                "circuit_breaker": {"recovery_timeout_s": 30},
                "services": {"crm": {"circuit_breaker": {"failure_threshold": 2}}},
            }
        )
        crm = s.breaker_for("crm")
        assert (crm.failure_threshold, crm.recovery_timeout_s) == (2, 30)
        assert s.breaker_for("llm").failure_threshold == 4

    def test_partial_service_keeps_its_other_defaults(self) -> None:
        """Naming one key of a service keeps that service's other defaults."""
        s = parse_settings({"services": {"elevenlabs": {"latency_ms": 5}}})
        assert s.services["elevenlabs"].latency_ms == 5
        assert s.services["elevenlabs"].api_key_env == "ELEVENLABS_API_KEY"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"retry": {"max_retries": -1}}, "retry.max_retries: must be >= 0"),
        ({"retry": {"max_retries": "three"}}, "retry.max_retries: must be a whole"),
        ({"retry": {"retries": 3}}, "retry.retries: unknown key"),
        ({"bogus": 1}, "bogus: unknown key"),
        (
            {"circuit_breaker": {"failure_threshold": 0}},
            "circuit_breaker.failure_threshold: must be >= 1",
        ),
        ({"services": {"sms": {}}}, "services.sms: unknown service"),
        (
            {"services": {"llm": {"provider": "anthropic"}}},
            "services.llm.provider: must be one of simulated, openai",
        ),
        (
            {"services": {"crm": {"retry": {"multiplier": 0.5}}}},
            "services.crm.retry.multiplier: must be >= 1",
        ),
        (
            {"alerts": {"channels": {"email": {"mode": "loud"}}}},
            "alerts.channels.email.mode: must be one of",
        ),
        ({"retry": {"initial_delay_s": 30}}, "max_delay_s must be >= initial_delay_s"),
    ],
)
def test_invalid_settings_name_the_key(data: dict[str, object], message: str) -> None:
    """Each invalid value is an InputError naming the key path."""
    with pytest.raises(InputError) as caught:
        parse_settings(data, source="settings.yaml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("settings.yaml: ")


class TestLoading:
    def test_missing_file_is_named(self, tmp_path: Path) -> None:
        """A settings path that does not exist is an InputError naming it."""
        with pytest.raises(InputError, match=r"nope\.yaml: settings file not found"):
            load_settings(tmp_path / "nope.yaml")

    def test_broken_yaml_names_the_line(self, tmp_path: Path) -> None:
        """A YAML syntax error names the file and the line."""
        path = tmp_path / "s.yaml"
        path.write_text("retry:\n  max_retries: [1\n", encoding="utf-8")
        with pytest.raises(InputError, match=r"s.yaml: not valid YAML at line \d"):
            load_settings(path)

    def test_empty_file_gives_defaults(self, tmp_path: Path) -> None:
        """An empty settings file means the built-in defaults."""
        path = tmp_path / "s.yaml"
        path.write_text("", encoding="utf-8")
        assert load_settings(path) == Settings()

    def test_top_level_list_is_refused(self, tmp_path: Path) -> None:
        """A settings file must be a mapping of keys."""
        path = tmp_path / "s.yaml"
        path.write_text("- 1\n", encoding="utf-8")
        with pytest.raises(InputError, match="must be a mapping"):
            load_settings(path)

    def test_resolution_order(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """--settings wins over $CALLAGENT_SETTINGS, which wins over ./settings.yaml."""
        assert resolve_settings_path(None) is None
        (tmp_path / "settings.yaml").write_text("{}", encoding="utf-8")
        assert resolve_settings_path(None) == Path("settings.yaml")
        monkeypatch.setenv("CALLAGENT_SETTINGS", "env.yaml")
        assert resolve_settings_path(None) == Path("env.yaml")
        assert resolve_settings_path(Path("cli.yaml")) == Path("cli.yaml")
