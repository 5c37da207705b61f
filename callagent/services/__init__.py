"""The pipeline's services: simulated ones, and the interface real adapters meet."""

from callagent.services.base import (
    CallOutcome,
    CrmRecord,
    CrmService,
    LlmService,
    Service,
    ServiceSet,
    Speech,
    TtsService,
)
from callagent.services.factory import build_services
from callagent.services.faults import Fault, FaultMode, FaultPlan, parse_fault_spec
from callagent.services.simulated import simulated_services

__all__ = [
    "CallOutcome",
    "CrmRecord",
    "CrmService",
    "Fault",
    "FaultMode",
    "FaultPlan",
    "LlmService",
    "Service",
    "ServiceSet",
    "Speech",
    "TtsService",
    "build_services",
    "parse_fault_spec",
    "simulated_services",
]
