"""The JSON bodies the simulator answers with, shaped like seed 004's examples.

* the run object (``GET /brands/{brand_id}/runs/{run_id}``): ``id, brand_id, kind,
  status, error, started_at, finished_at, meta``. ``started_at`` is when the run was
  accepted. A live run's ``meta`` holds ``current_stage``, ``stage_detail`` and
  ``stage_started_at`` (each null while queued, or for an endpoint without stages); a
  run at its end keeps only ``current_stage``, the stage it ended in, as the failed
  example shows;
* the list (``GET /brands/{brand_id}/runs``): ``{brand_id, total, runs}``, newest first,
  every run of the brand, each a whole run object (the document's entries are cut short
  with ``"..."``), ``total`` their number;
* a fire's ``202``: ``{run_id, status: "queued"}``; a cancel's ``200``:
  ``{run_id, status: "failed", cancelled: true}``;
* every error: FastAPI's ``{"detail": ...}``, as the document's 409 is.

Times are ISO-8601 UTC with a ``Z`` (to the millisecond: stages may be short here).
"""

from __future__ import annotations

from typing import Any

from brew_bridge.sim.boring_marketing.pipelines import stage_detail
from brew_bridge.sim.boring_marketing.state import Run
from brew_bridge.timefmt import iso_utc

__all__ = ["accepted", "canceled", "detail", "run_body", "runs_body"]


def _time(ts: float | None) -> str | None:
    return iso_utc(ts) if ts is not None else None


def run_body(run: Run, now: float) -> dict[str, Any]:
    view = run.view(now)
    meta: dict[str, Any] = {"current_stage": view.stage}
    if view.status in ("queued", "running"):
        stage = view.stage
        meta["stage_detail"] = stage_detail(stage, view.stage_progress) if stage else None
        meta["stage_started_at"] = _time(view.stage_started_at)
    return {
        "id": run.run_id,
        "brand_id": run.brand_id,
        "kind": run.kind,
        "status": view.status,
        "error": view.error,
        "started_at": _time(run.plan.created_at),
        "finished_at": _time(view.finished_at),
        "meta": meta,
    }


def runs_body(brand_id: str, runs: list[Run], now: float) -> dict[str, Any]:
    return {"brand_id": brand_id, "total": len(runs), "runs": [run_body(r, now) for r in runs]}


def accepted(run: Run) -> dict[str, Any]:
    return {"run_id": run.run_id, "status": "queued"}


def canceled(run: Run) -> dict[str, Any]:
    return {"run_id": run.run_id, "status": "failed", "cancelled": True}


def detail(message: Any) -> dict[str, Any]:
    return {"detail": message}
