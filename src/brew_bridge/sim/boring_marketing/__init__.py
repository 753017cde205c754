"""A faithful local Boring Marketing server (seed 004, "Polling Runs") for tests and demos.

It serves the document's routes: the nine pipeline endpoints
(``POST /brands/{brand_id}/analyze``, ``/discover``, ``/enrich/brand``, ...) answering
``202`` with a ``run_id`` (or ``409`` with ``X-Running-Run-Id`` while the brand has a run
in progress), the run (``GET /brands/{brand_id}/runs/{run_id}``), the brand's runs
(``GET /brands/{brand_id}/runs``) and the cancel (``POST …/runs/{run_id}/cancel``), with
``X-API-Key`` auth, runs that go ``queued`` → ``running`` (through their stages) →
``done`` | ``failed`` as time passes, runs that get stuck, and the Brew simulator's
injectable faults; ``/_sim/*`` admin routes change its state at run time. See
docs/targets/boring-marketing.md.
"""

from brew_bridge.sim.boring_marketing.app import BoringApp, create_app
from brew_bridge.sim.boring_marketing.seed import Seed, load_seed, parse_seed
from brew_bridge.sim.boring_marketing.state import BoringState

__all__ = ["BoringApp", "BoringState", "Seed", "create_app", "load_seed", "parse_seed"]
