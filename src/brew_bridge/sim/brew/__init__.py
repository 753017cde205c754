"""A faithful local Brew v1 server for tests, demos and benchmarks (``brew-bridge sim``).

It serves the automations routes of brew-api.md (9.3.0 shapes, or the newer §11 shapes)
with real auth, rate windows, idempotency, runs that move from ``pending`` to a terminal
status as time passes, and injectable faults; ``/_sim/*`` admin routes change its state
at run time. See docs/simulator.md.
"""

from brew_bridge.sim.brew.app import SimApp, create_app
from brew_bridge.sim.brew.seed import Seed, load_seed, parse_seed
from brew_bridge.sim.brew.state import SimState

__all__ = ["Seed", "SimApp", "SimState", "create_app", "load_seed", "parse_seed"]
