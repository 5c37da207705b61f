"""The error taxonomy: every failure callagent handles is one of these.

::

    CallAgentError
    ├── ServiceError (service, status, code, retry_after)
    │   ├── TransientError            retried with backoff
    │   │   ├── ServiceTimeout        connect/read timeout
    │   │   ├── ServiceUnavailable    500, 502, 503, 504, 529, "system_busy"
    │   │   ├── NetworkError          connection refused/reset, DNS
    │   │   └── RateLimited           429 rate limits; honours Retry-After
    │   └── PermanentError            never retried
    │       ├── AuthenticationFailed  invalid key (service-wide)
    │       ├── QuotaExceeded         out of credits or quota (service-wide)
    │       └── InvalidPayload        the request itself is wrong (this call only)
    ├── CircuitOpenError              the breaker refused the call, nothing was sent
    ├── InputError                    bad contacts file or settings (exit code 2)
    └── StorageError                  the state database failed mid-run (disk full)

Adapters translate their transport's errors (httpx, sqlite3, yaml) into this tree at
the boundary with ``raise ... from exc``; nothing above the adapters sees a foreign
exception type. Messages never carry secrets: adapters build them from the provider's
error code and a redacted description, never from a request URL or header.
"""

from __future__ import annotations

from typing import ClassVar


class CallAgentError(Exception):
    """Base of every error callagent raises on purpose."""


class ServiceError(CallAgentError):
    """A request to a third-party service failed."""

    category: ClassVar[str] = ""
    #: True when the failure says nothing about this call and everything about the
    #: service: every other call would fail the same way, so the breaker opens at once.
    service_wide: ClassVar[bool] = False

    def __init__(
        self,
        service: str,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.service = service
        self.message = message
        self.status = status
        self.code = code
        self.retry_after = retry_after
        #: Retries the retry engine made before giving up with this error.
        self.retry_count = 0

    def __str__(self) -> str:
        parts = [self.service]
        if self.status is not None:
            parts.append(str(self.status))
        if self.code:
            parts.append(self.code)
        return f"{' '.join(parts)}: {self.message}"


class TransientError(ServiceError):
    """Worth retrying: the same request may succeed later."""

    category = "Transient"


class ServiceTimeout(TransientError):
    """The service did not connect or answer in time."""


class ServiceUnavailable(TransientError):
    """The service answered with a server-side failure (5xx, overloaded, busy)."""


class NetworkError(TransientError):
    """The connection could not be made or was cut (refused, reset, DNS)."""


class RateLimited(TransientError):
    """The service asked us to slow down; ``retry_after`` says for how long."""


class PermanentError(ServiceError):
    """Retrying the same request cannot help."""

    category = "Permanent"


class AuthenticationFailed(PermanentError):
    """The key was rejected: every call to this service will fail until fixed."""

    service_wide = True


class QuotaExceeded(PermanentError):
    """Credits or quota are spent: every call fails until they are topped up."""

    service_wide = True


class InvalidPayload(PermanentError):
    """The request itself was refused; the service is fine and so are other calls."""


class CircuitOpenError(CallAgentError):
    """The breaker refused the call without sending anything."""

    def __init__(self, service: str, state: str, reason: str) -> None:
        super().__init__(f"{service}: circuit {state}, call refused: {reason}")
        self.service = service
        self.state = state
        self.reason = reason


class InputError(CallAgentError):
    """Bad user input (contacts file, settings, command line): exit code 2."""


class StorageError(CallAgentError):
    """The state database failed while a campaign ran (disk full, locked, corrupt).

    The campaign stops: without its journal it could neither resume nor promise
    that nobody is dialled twice.
    """
