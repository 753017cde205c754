"""Helpers shipped for tests and demos: real servers on free loopback ports."""

from brew_bridge.testing.kafka import BrokerHandle, running_broker
from brew_bridge.testing.simulator import SimulatorHandle, running_simulator

__all__ = ["BrokerHandle", "SimulatorHandle", "running_broker", "running_simulator"]
