"""`check` and `map` on the real example config and every sample in config/samples.

The commands run in-process through their own ``register``/``func`` (the same code path
``brew-bridge`` dispatches to), with the process environment cleared of bridge variables.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from brew_bridge.cli import check
from brew_bridge.cli import map as map_command

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "example.yaml"
SAMPLES = REPO / "config" / "samples"
MANIFEST = yaml.safe_load((SAMPLES / "manifest.yaml").read_text())["samples"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.upper().startswith(("BREW_BRIDGE_", "BREW_API_KEY")):
            monkeypatch.delenv(name)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="brew-bridge")
    commands = parser.add_subparsers(required=True)
    check.register(commands)
    map_command.register(commands)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------- check


def test_check_example_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["check", "--config", str(EXAMPLE)], capsys)
    assert code == 0
    assert f"{EXAMPLE}: valid" in out
    assert "10 routes, 4 topics (leads, orders, payments, signups), 8 triggers" in out
    assert "-> research:trg_lead_research" in out
    assert "target growth (boring_marketing): http://127.0.0.1:8789; API key: not set" in out
    assert "4 webhook sources: POST /webhooks/clerk, POST /webhooks/gh" in out
    assert "webhook secrets not set (run needs them): STRIPE_WEBHOOK_SECRET" in out
    assert re.search(
        r"receipt_payment_intent\s+payments,stripe: type payment_intent.succeeded, filter", out
    )
    assert "order_shipped" in out
    assert "API key: not set" in out


def test_check_reports_every_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = EXAMPLE.read_text()
    text = text.replace("  bootstrap_servers: 127.0.0.1:9092", "  bootstrap_server: 127.0.0.1:9092")
    text = text.replace("    trigger: tri_dunning", "    trigger: tri_dunnig")
    text = text.replace(
        "path: event.data.object.amount_paid", "path: event.data.object.amount_paid[", 1
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    code, out, err = run(["check", "--config", str(bad)], capsys)
    assert code == 2
    lines = out.splitlines()
    assert len(lines) == 3
    assert all(
        re.fullmatch(rf"{re.escape(str(bad))}:\d+: \S+: .+ \(fix: .+\)", line) for line in lines
    )
    assert "kafka.bootstrap_server: unknown key" in lines[0]
    assert "did you mean 'bootstrap_servers'?" in lines[0]
    assert any("routes[1].payload.amount.path: invalid JMESPath" in line for line in lines)
    assert any("routes[4].trigger: trigger 'tri_dunnig'" in line for line in lines)
    assert "3 problems" in err


def test_check_with_env_overrides(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BREW_BRIDGE_SERVER__PORT", "not-a-port")
    code, out, _ = run(["check", "--config", str(EXAMPLE)], capsys)
    assert code == 2
    assert out.startswith("environment: BREW_BRIDGE_SERVER__PORT:")


def test_check_says_when_the_api_key_is_set(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BREW_API_KEY", "brew_cli_test_key_1234")
    code, out, _ = run(["check", "--config", str(EXAMPLE)], capsys)
    assert code == 0
    assert "API key: set" in out
    assert "brew_cli_test_key_1234" not in out


# --------------------------------------------------------------------------- map


def _map(sample: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    if "webhook" in sample:
        argv = ["map", "--config", str(EXAMPLE), "--webhook", sample["webhook"]]
    else:
        argv = ["map", "--config", str(EXAMPLE), "--topic", sample["topic"]]
    for name, value in (sample.get("headers") or {}).items():
        argv += ["--header", f"{name}={value}"]
    if "key" in sample:
        argv += ["--key", str(sample["key"])]
    code, out, err = run([*argv, str(SAMPLES / sample["file"])], capsys)
    assert not err
    return code, json.loads(out)


@pytest.mark.parametrize("sample", MANIFEST, ids=[s["file"] for s in MANIFEST])
def test_every_sample_maps_as_the_manifest_says(
    sample: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (sample.get("env") or {}).items():
        monkeypatch.setenv(name, value)
    expect = sample["expect"]
    code, report = _map(sample, capsys)

    delivering = [d["route"] for d in report["deliveries"]]
    assert delivering == expect.get("deliver", [])
    for delivery in report["deliveries"]:
        assert delivery["validation"] == {"ok": True, "warnings": []}
        assert delivery["idempotencyKey"].startswith(delivery["route"] + ":")
        assert len(delivery["idempotencyKey"]) <= 100
        # The ordering key is the email; a payload without one is not ordered.
        assert delivery["payload"].get("email") == delivery["orderingKey"]
    for route, fields in (expect.get("payload") or {}).items():
        payload = next(d["payload"] for d in report["deliveries"] if d["route"] == route)
        assert {k: payload.get(k) for k in fields} == fields

    dead = report["deadLetters"]
    wanted = expect.get("dead_letters", [])
    assert [(d["reason"], d["route"]) for d in dead] == [
        (w["reason"], w.get("route")) for w in wanted
    ]
    for got, want in zip(dead, wanted, strict=True):
        if "field" in want:
            details = got["details"]
            fields = (
                [e["field"] for e in details["errors"]]
                if "errors" in details
                else [details["field"]]
            )
            assert want["field"] in fields
        assert got["message"]
    assert report["dropped"] is False
    assert code == (0 if delivering and not dead else 1)


def test_manifest_lists_every_sample() -> None:
    files = {str(p.relative_to(SAMPLES)) for p in SAMPLES.rglob("*") if p.is_file()}
    files.discard("manifest.yaml")
    assert files == {s["file"] for s in MANIFEST}
    families = {s["file"].split("/")[0] for s in MANIFEST}
    assert families == {"signup", "payment", "order", "broken", "webhooks", "lead"}


def test_map_reads_stdin_and_tries_every_route_without_topic(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    event = (SAMPLES / "payment" / "invoice_paid.json").read_bytes()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(event)))
    code, out, _ = run(["map", "--config", str(EXAMPLE), "-"], capsys)
    report = json.loads(out)
    assert code == 0
    assert report["topic"] is None
    assert [d["route"] for d in report["deliveries"]] == ["receipt_invoice", "crm_invoice_paid"]
    keys = {d["idempotencyKey"] for d in report["deliveries"]}
    assert keys == {
        "receipt_invoice:evt_1PLqYbCZ6qsJgndJ0a7Hs1Tz",
        "crm_invoice_paid:evt_1PLqYbCZ6qsJgndJ0a7Hs1Tz",
    }


def test_map_reports_event_id_and_trigger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = json.loads((SAMPLES / "signup" / "user_created.json").read_text())
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    code, out, _ = run(["map", "--config", str(EXAMPLE), "--topic", "signups", str(path)], capsys)
    (delivery,) = json.loads(out)["deliveries"]
    assert code == 0
    assert delivery["eventId"] == "user_2hGZ8Vn5Qk3Jd8Lp1Rs7Tw9Xy2B"
    assert delivery["trigger"] == "tri_welcome"


def test_map_with_a_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes: []\nbogus: 1\n")
    event = SAMPLES / "payment" / "invoice_paid.json"
    code, out, err = run(["map", "--config", str(bad), str(event)], capsys)
    assert code == 2
    assert not out
    assert f"{bad}:2: bogus: unknown key 'bogus'" in err


def test_map_with_an_unreadable_event_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["map", "--config", str(EXAMPLE), "/nonexistent/event.json"], capsys)
    assert code == 2
    assert "cannot read the event" in err


def test_map_header_argument_needs_a_name_and_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run(["map", "--config", str(EXAMPLE), "--header", "novalue", "x.json"], capsys)


def test_map_webhook_explains_a_bad_saved_delivery(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    saved = SAMPLES / "webhooks" / "stripe_invoice_paid.http"
    code, _, err = run(["map", "--config", str(EXAMPLE), "--webhook", "paypal", str(saved)], capsys)
    assert code == 2
    assert "no webhook source 'paypal' in the config (it has: clerk, gh, shop, stripe)" in err
    bare = tmp_path / "bare.http"
    bare.write_bytes(b'Content-Type: application/json\n\n{"id": "evt_1"}')
    code, _, err = run(["map", "--config", str(EXAMPLE), "--webhook", "-", str(bare)], capsys)
    assert code == 2
    assert "pass --webhook NAME" in err
    code, out, _ = run(["map", "--config", str(EXAMPLE), "--webhook", "stripe", str(bare)], capsys)
    assert code == 1  # no type: no route takes it
    assert json.loads(out)["deadLetters"][0]["reason"] == "no_route"
    broken = tmp_path / "broken.http"
    broken.write_bytes(b"POST /webhooks/stripe HTTP/1.1\nnot a header\n\n{}")
    code, _, err = run(["map", "--config", str(EXAMPLE), "--webhook", "-", str(broken)], capsys)
    assert code == 2
    assert "line 2 is not 'Name: value'" in err


def test_check_lists_the_queue_sources_without_passwords(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["sources"] = {
        "rabbit": {"signups": {"url": "amqp://u:hunter2-pass@mq:5672/", "queue": "signups"}},
        "redis": {"spare": {"stream": "spare"}},
    }
    doc["routes"][0]["sources"] = ["rabbit.signups"]
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    code, out, _ = run(["check", "--config", str(path)], capsys)
    assert code == 0, out
    assert "1 queue sources: rabbit.signups (amqp://mq:5672/)" in out
    assert "WARNING: no route reads redis.spare: nothing consumes them" in out
    assert "hunter2-pass" not in out
