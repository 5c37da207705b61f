"""Settings: ``settings.yaml`` validated into typed, frozen models.

Every key has a default, so callagent runs with no file at all. A wrong type, an
unknown key or an impossible value raises :class:`~callagent.errors.InputError` naming
the key path (``retry.max_retries: must be >= 0``). Secrets never live here: services
and channels name the environment variable that holds them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from callagent.errors import InputError

SETTINGS_ENV = "CALLAGENT_SETTINGS"
DEFAULT_SETTINGS_FILE = Path("settings.yaml")

#: The call pipeline's services, in the order a call uses them.
SERVICE_NAMES = ("crm", "llm", "elevenlabs")

Seconds = Annotated[float, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrySettings(_Model):
    """Exponential backoff for transient errors."""

    max_retries: int = Field(3, ge=0, le=20)
    initial_delay_s: Seconds = 5.0
    multiplier: float = Field(2.0, ge=1)
    max_delay_s: Seconds = 20.0
    jitter_s: Seconds = 0.0

    @model_validator(mode="after")
    def _cap_covers_first_wait(self) -> RetrySettings:
        if self.max_delay_s < self.initial_delay_s:
            raise ValueError("max_delay_s must be >= initial_delay_s")
        return self


class BreakerSettings(_Model):
    """One service's circuit breaker."""

    failure_threshold: int = Field(4, ge=1)
    recovery_timeout_s: Seconds = 60.0
    half_open_max_calls: int = Field(1, ge=1)
    success_threshold: int = Field(1, ge=1)
    #: Optional failure-rate trip: over the last ``window_size`` attempts, at least
    #: ``min_calls`` of them, a failure share of ``failure_rate`` or more opens it.
    window_size: int | None = Field(None, ge=1)
    failure_rate: float | None = Field(None, gt=0, le=1)
    min_calls: int = Field(10, ge=1)

    @model_validator(mode="after")
    def _window_complete(self) -> BreakerSettings:
        if (self.window_size is None) != (self.failure_rate is None):
            raise ValueError("window_size and failure_rate are set together")
        return self


class RetryOverride(_Model):
    max_retries: int | None = Field(None, ge=0, le=20)
    initial_delay_s: Seconds | None = None
    multiplier: float | None = Field(None, ge=1)
    max_delay_s: Seconds | None = None
    jitter_s: Seconds | None = None


class BreakerOverride(_Model):
    failure_threshold: int | None = Field(None, ge=1)
    recovery_timeout_s: Seconds | None = None
    half_open_max_calls: int | None = Field(None, ge=1)
    success_threshold: int | None = Field(None, ge=1)
    window_size: int | None = Field(None, ge=1)
    failure_rate: float | None = Field(None, gt=0, le=1)
    min_calls: int | None = Field(None, ge=1)


class ServiceSettings(_Model):
    """One third-party service of the call pipeline."""

    provider: str = "simulated"
    latency_ms: float = Field(100.0, ge=0)
    timeout_s: float = Field(10.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    base_url: str = ""
    api_key_env: str | None = None
    voice_id: str | None = None
    model: str | None = None
    output_dir: str = "output/audio"
    #: Most requests in flight to this service at once (a bulkhead); None: no limit.
    max_concurrency: int | None = Field(None, ge=1)
    retry: RetryOverride = RetryOverride()
    circuit_breaker: BreakerOverride = BreakerOverride()


_PROVIDERS = {
    "elevenlabs": ("simulated", "elevenlabs"),
    "llm": ("simulated", "openai"),
    "crm": ("simulated", "hubspot"),
}

_SERVICE_DEFAULTS: dict[str, dict[str, Any]] = {
    "elevenlabs": {
        "latency_ms": 300,
        "timeout_s": 10,
        "base_url": "https://api.elevenlabs.io",
        "api_key_env": "ELEVENLABS_API_KEY",
        "voice_id": "21m00Tcm4TlvDq8ikWAM",
    },
    "llm": {
        "latency_ms": 500,
        "timeout_s": 30,
        "base_url": "https://api.openai.com/v1",
        "api_key_env": "OPENAI_API_KEY",
        "model": "gpt-4o-mini",
    },
    "crm": {
        "latency_ms": 100,
        "timeout_s": 10,
        "base_url": "https://api.hubapi.com",
        "api_key_env": "HUBSPOT_TOKEN",
    },
}


class HealthCheckSettings(_Model):
    interval_s: float = Field(30.0, gt=0)


class CampaignSettings(_Model):
    max_call_attempts: int = Field(3, ge=1)
    max_wait_s: Seconds = 900.0
    workers: int = Field(1, ge=1, le=256)


class ContactsSettings(_Model):
    default_region: str = Field("US", min_length=2, max_length=2)


class StorageSettings(_Model):
    path: str = ".callagent/state.db"
    #: FULL: every state change survives a power cut. NORMAL (WAL): it survives a
    #: killed process but maybe not a power cut, for about a sixth of the cost.
    synchronous: Literal["FULL", "NORMAL"] = "FULL"


class GoogleSheetsSettings(_Model):
    """Also append the Sheets rows to a Google spreadsheet (needs callagent[sheets])."""

    #: The spreadsheet's id, as in its URL: docs.google.com/spreadsheets/d/<key>/.
    spreadsheet_key: str = Field(min_length=1)
    #: The tab rows go to; created, with the header row, when missing.
    worksheet: str = Field("callagent", min_length=1)
    #: The variable holding the path of the service account's JSON key file.
    credentials_env: str = Field("GOOGLE_APPLICATION_CREDENTIALS", min_length=1)
    #: Rows per append request; the Sheets API allows 60 writes a minute per user.
    batch_size: int = Field(500, ge=1, le=10_000)
    #: A partial batch is sent this long after its first row.
    flush_interval_s: float = Field(5.0, gt=0)
    #: Rows waiting at most; past it the oldest are dropped, and counted.
    queue_size: int = Field(10_000, ge=1)
    #: How long the end of a run waits for the rows still queued.
    drain_timeout_s: Seconds = 10.0


class LoggingSettings(_Model):
    dir: str = "logs"
    #: Rotate logs/system.log when it passes this size.
    rotation_mb: float = Field(50.0, gt=0)
    #: Off unless set: append the Sheets rows to a Google Sheet as well.
    google_sheets: GoogleSheetsSettings | None = None


class EmailChannel(_Model):
    mode: Literal["mock", "live"] = "mock"
    send_resolved: bool = True
    host: str = "localhost"
    port: int = Field(25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    sender: str = "callagent@localhost"
    recipients: list[str] = ["oncall@example.com"]
    username_env: str | None = None
    password_env: str | None = None
    timeout_s: float = Field(10.0, gt=0)


class TelegramChannel(_Model):
    mode: Literal["mock", "live"] = "mock"
    send_resolved: bool = True
    base_url: str = "https://api.telegram.org"
    token_env: str = "TELEGRAM_BOT_TOKEN"
    chat_id: str = "-1000000000000"
    timeout_s: float = Field(10.0, gt=0)


class WebhookChannel(_Model):
    mode: Literal["mock", "live"] = "mock"
    send_resolved: bool = True
    url: str = "http://localhost:9000/callagent"
    secret_env: str = "WEBHOOK_SECRET"
    timeout_s: float = Field(10.0, gt=0)


class ChannelsSettings(_Model):
    email: EmailChannel = EmailChannel()
    telegram: TelegramChannel = TelegramChannel()
    webhook: WebhookChannel = WebhookChannel()


class AlertsSettings(_Model):
    unavailable_after_s: Seconds = 300.0
    repeat_interval_s: Seconds = 3600.0
    group_wait_s: Seconds = 30.0
    #: A breaker that reopens within this long of its incident's last notice is
    #: flapping: the reopening is not announced until the window has passed.
    flap_window_s: Seconds = 600.0
    channels: ChannelsSettings = ChannelsSettings()


class Settings(_Model):
    """The whole validated settings tree."""

    retry: RetrySettings = RetrySettings()
    circuit_breaker: BreakerSettings = BreakerSettings()
    health_check: HealthCheckSettings = HealthCheckSettings()
    campaign: CampaignSettings = CampaignSettings()
    contacts: ContactsSettings = ContactsSettings()
    storage: StorageSettings = StorageSettings()
    logging: LoggingSettings = LoggingSettings()
    services: dict[str, ServiceSettings] = Field(default_factory=dict)
    alerts: AlertsSettings = AlertsSettings()

    @model_validator(mode="before")
    @classmethod
    def _merge_service_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        given = data.get("services") or {}
        if not isinstance(given, dict):
            return data
        merged: dict[str, Any] = {}
        for name, defaults in _SERVICE_DEFAULTS.items():
            override = given.get(name) or {}
            merged[name] = (
                {**defaults, **override} if isinstance(override, dict) else override
            )
        for name, value in given.items():
            if name not in merged:
                merged[name] = value
        return {**data, "services": merged}

    @model_validator(mode="after")
    def _known_services(self) -> Settings:
        for name, service in self.services.items():
            if name not in _PROVIDERS:
                known = ", ".join(SERVICE_NAMES)
                raise ValueError(f"services.{name}: unknown service (known: {known})")
            allowed = _PROVIDERS[name]
            if service.provider not in allowed:
                raise ValueError(
                    f"services.{name}.provider: must be one of {', '.join(allowed)}"
                )
        return self

    def with_workers(self, workers: int) -> Settings:
        """These settings with ``campaign.workers`` replaced (``--workers``)."""
        campaign = CampaignSettings.model_validate(
            {**self.campaign.model_dump(), "workers": workers}
        )
        return self.model_copy(update={"campaign": campaign})

    def retry_for(self, service: str) -> RetrySettings:
        """The retry policy of ``service``: its overrides over the top-level one."""
        override = self.services[service].retry.model_dump(exclude_none=True)
        return self.retry.model_copy(update=override) if override else self.retry

    def breaker_for(self, service: str) -> BreakerSettings:
        """The breaker settings of ``service``: its overrides over the top level."""
        override = self.services[service].circuit_breaker.model_dump(exclude_none=True)
        if not override:
            return self.circuit_breaker
        return BreakerSettings.model_validate(
            {**self.circuit_breaker.model_dump(), **override}
        )


_MESSAGES = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "extra_forbidden": "unknown key",
    "missing": "required",
    "literal_error": "must be one of {expected}",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "list_type": "must be a list",
    "string_too_short": "must have at least {min_length} characters",
    "string_too_long": "must have at most {max_length} characters",
}


def _describe(error: Any) -> str:
    path = ".".join(str(part) for part in error["loc"])
    template = _MESSAGES.get(error["type"])
    ctx = error.get("ctx") or {}
    if template is not None:
        try:
            text = template.format(**ctx)
        except KeyError:
            text = error["msg"]
    else:
        text = error["msg"].removeprefix("Value error, ")
    if text.startswith("services.") or not path:
        return text
    return f"{path}: {text}"


def parse_settings(data: Any, *, source: str = "settings") -> Settings:
    """Validate a parsed settings mapping, raising InputError naming the key path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{source}: the top level must be a mapping of keys")
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise InputError(f"{source}: {problems}") from exc


def resolve_settings_path(explicit: Path | None) -> Path | None:
    """Which settings file applies: the option, then the environment, then ./."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get(SETTINGS_ENV)
    if from_env:
        return Path(from_env)
    return DEFAULT_SETTINGS_FILE if DEFAULT_SETTINGS_FILE.is_file() else None


def load_settings(path: Path | None) -> Settings:
    """Load and validate a settings file; ``None`` gives the built-in defaults."""
    if path is None:
        return Settings()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError(f"{path}: settings file not found") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{path}: is a directory, not a settings file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read settings file ({exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}: not valid YAML{where}") from exc
    return parse_settings(data, source=str(path))
