"""The integrator event stream: every committed event to NATS JetStream as a CloudEvent."""

from infra.relay.config import RelayConfig, relay_config
from infra.relay.relay import Relay
from infra.relay.runner import RelayRunner
from infra.relay.status import RelayStatus, relay_status
from infra.relay.tracking import create_relay_schema

__all__ = [
    "Relay",
    "RelayConfig",
    "RelayRunner",
    "RelayStatus",
    "create_relay_schema",
    "relay_config",
    "relay_status",
]
