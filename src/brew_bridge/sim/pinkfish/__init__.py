"""A faithful local Pinkfish server (seed 003, "Async Polling") for tests and demos.

It serves the three routes of the document: ``POST /ext/triggers/{triggerId}`` (an
empty body, the ids in ``X-Pf-Run-Id`` / ``X-Pf-Automation-Id``), and the polling
routes ``GET /ext/webhook/{apiKey}/runs/{automationId}/{runId}/status`` and
``…/results``, with keys, runs that go ``PENDING`` → ``RUNNING`` → ``COMPLETE`` |
``FAILED`` | ``TIMEOUT`` as time passes, and the Brew simulator's injectable faults;
``/_sim/*`` admin routes change its state at run time. See docs/targets/pinkfish.md.
"""

from brew_bridge.sim.pinkfish.app import PinkfishApp, create_app
from brew_bridge.sim.pinkfish.seed import Seed, load_seed, parse_seed
from brew_bridge.sim.pinkfish.state import PinkfishState

__all__ = ["PinkfishApp", "PinkfishState", "Seed", "create_app", "load_seed", "parse_seed"]
