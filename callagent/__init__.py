"""callagent: error recovery and resilience for AI call agents."""

from callagent.breaker import BreakerRegistry, CircuitBreaker, CircuitState
from callagent.clock import Clock, SystemClock, VirtualClock
from callagent.errors import (
    AuthenticationFailed,
    CallAgentError,
    CircuitOpenError,
    InputError,
    InvalidPayload,
    NetworkError,
    PermanentError,
    QuotaExceeded,
    RateLimited,
    ServiceError,
    ServiceTimeout,
    ServiceUnavailable,
    TransientError,
)
from callagent.retry import Backoff, Guard
from callagent.settings import Settings, load_settings

__version__ = "0.1.0"

__all__ = [
    "AuthenticationFailed",
    "Backoff",
    "BreakerRegistry",
    "CallAgentError",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "Clock",
    "Guard",
    "InputError",
    "InvalidPayload",
    "NetworkError",
    "PermanentError",
    "QuotaExceeded",
    "RateLimited",
    "ServiceError",
    "ServiceTimeout",
    "ServiceUnavailable",
    "Settings",
    "SystemClock",
    "TransientError",
    "VirtualClock",
    "__version__",
    "load_settings",
]
