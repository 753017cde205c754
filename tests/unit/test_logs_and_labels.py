"""Secrets never reach a log line; metric labels never carry PII or keys."""

from __future__ import annotations

import pytest

from brew_bridge.observe.logs import hide, redact, redact_secrets
from brew_bridge.observe.metrics import Metrics


@pytest.mark.parametrize(
    "text",
    [
        "key brew_live_9f8e7d6c5b4a",
        "Authorization: Bearer brew_live_9f8e7d6c5b4a",
        "Bearer sk-something-else",
    ],
)
def test_redact_hides_keys_and_bearer_tokens(text: str) -> None:
    out = redact(text)
    assert "9f8e7d6c5b4a" not in out
    assert "sk-something-else" not in out
    assert "[REDACTED]" in out


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "fired welcome:evt_123 to tri_welcome (run_01HZ)"
    assert redact(text) == text


def test_processor_scrubs_values_and_secret_named_keys() -> None:
    event = {
        "event": "refused with brew_live_9f8e7d6c5b4a",
        "api_key": "anything at all",
        "Authorization": "Basic dXNlcjpwYXNz",
        "route": "welcome",
        "attempt": 3,
    }
    out = redact_secrets(None, "info", dict(event))
    assert out["event"] == "refused with [REDACTED]"
    assert out["api_key"] == "[REDACTED]"
    assert out["Authorization"] == "[REDACTED]"
    assert out["route"] == "welcome"
    assert out["attempt"] == 3


def test_no_metric_label_can_carry_pii_or_a_key() -> None:
    forbidden = {"email", "recipient", "recipient_email", "key", "idempotency_key", "api_key"}
    metrics = Metrics()
    labels = {
        label
        for collector in metrics.registry._collector_to_names  # the registered metrics
        for label in getattr(collector, "_labelnames", ())
    }
    assert labels, "no labelled metrics found"
    assert labels.isdisjoint(forbidden), labels & forbidden


def test_every_metric_follows_prometheus_naming() -> None:
    metrics = Metrics()
    families = list(metrics.registry.collect())
    assert families
    for family in families:
        assert family.name.startswith("brew_bridge_"), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
    counters = [family.name for family in families if family.type == "counter"]
    assert counters
    names = set(metrics.registry._names_to_collectors)  # every exposed sample name
    for counter in counters:
        assert f"{counter}_total" in names, counter


def test_our_own_names_in_tracebacks_and_metrics_are_not_keys() -> None:
    text = (
        'File "/app/.venv/lib/python3.11/site-packages/brew_bridge/core/poller.py", line 9\n'
        "brew_bridge_fires_total went up; provider brew_api"
    )
    assert redact(text) == text
    assert redact(f"{text} key=brew_9f8e7d6c5b4a") == f"{text} key=[REDACTED]"


def test_nested_values_are_scrubbed() -> None:
    event = {
        "event": "fire failed",
        "error": {
            "message": "refused brew_live_9f8e7d6c5b4a",
            "headers": {"Authorization": "Basic dXNlcjpwYXNz", "x-request-id": "req_1"},
            "tries": [{"note": "Bearer abc.def.ghi"}, 3],
        },
    }
    out = redact_secrets(None, "info", event)
    assert out["error"] == {
        "message": "refused [REDACTED]",
        "headers": {"Authorization": "[REDACTED]", "x-request-id": "req_1"},
        "tries": [{"note": "[REDACTED]"}, 3],
    }


def test_a_key_the_process_read_is_hidden_whatever_its_shape() -> None:
    hide("pf_live_0123456789abcdef")
    hide("short")  # too short to be a key: ordinary words stay
    assert redact("GET /ext/webhook/pf_live_0123456789abcdef/runs") == (
        "GET /ext/webhook/[REDACTED]/runs"
    )
    assert redact("a short line") == "a short line"
