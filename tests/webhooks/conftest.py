from __future__ import annotations

import sys
from pathlib import Path

# The worker, simulator and outbox helpers are shared with the delivery tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "delivery"))
