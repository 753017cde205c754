"""``brew-bridge asyncapi`` and ``GET /asyncapi.json``: the AsyncAPI 3.0 document of the
subscriptions, as FastStream generates it, merged from one document per broker.

The document is checked against the official AsyncAPI 3.0.0 JSON Schema, vendored here
gzipped (``asyncapi-3.0.0-schema.json.gz``: ``schemas/3.0.0-without-$id.json`` of the npm
package ``@asyncapi/specs`` 6.11.1, Apache-2.0): no Python package keeps it offline.
Nothing here connects to a broker: the document is built from the config alone.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from delivery_support import running_worker

from brew_bridge.asyncapi import Part, merge_documents
from brew_bridge.cli import main
from brew_bridge.config import load_config

SCHEMA = Path(__file__).with_name("asyncapi-3.0.0-schema.json.gz")
PASSWORD = "pw-Zq81-secret"  # made up: it must never be shown
API_KEY = "brew_asyncapi_key"

TRIGGER = {
    "payload_schema": {
        "type": "object",
        "fields": [{"key": "email", "type": "string", "required": True}],
    }
}


def config_data(tmp_path: Path) -> dict[str, Any]:
    """A rabbit source read by two routes (one also reads Kafka), a second Kafka topic."""
    route = {"trigger": "tri_welcome", "payload": {"email": "event.email"}}
    return {
        "kafka": {"bootstrap_servers": "127.0.0.1:19092, 127.0.0.1:19093"},
        "outbox": {"path": str(tmp_path / "outbox.db"), "synchronous": "NORMAL"},
        "brew": {"base_url": "http://127.0.0.1:9/api"},
        "server": {"host": "127.0.0.1", "port": 0},
        "sources": {
            "rabbit": {
                "signups": {
                    "url": f"amqp://bridge:{PASSWORD}@127.0.0.1:5672/shop?heartbeat=5",
                    "queue": "signups-q",
                    "exchange": "events",
                    "routing_key": "user.*",
                },
                # Declared, read by no route: not a subscription, not in the document.
                "unused": {"url": "amqp://127.0.0.1:5672/", "queue": "nobody"},
            }
        },
        "triggers": {"tri_welcome": TRIGGER},
        "routes": [
            {"name": "welcome", "topics": ["signups"], "sources": ["rabbit.signups"], **route},
            {"name": "welcome-again", "sources": ["rabbit.signups"], **route},
            {"name": "paid", "topics": ["payments"], **route},
        ],
    }


def write_config(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def command(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["asyncapi", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def validate(document: dict[str, Any]) -> None:
    schema = json.loads(gzip.decompress(SCHEMA.read_bytes()))
    jsonschema.Draft7Validator(schema).validate(document)


@pytest.fixture
def printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out, err = command(capsys, "--config", str(write_config(tmp_path, config_data(tmp_path))))
    assert (code, err) == (0, ""), out
    assert PASSWORD not in out
    document: dict[str, Any] = json.loads(out)
    return document


def test_a_channel_and_a_receive_operation_per_subscription(printed: dict[str, Any]) -> None:
    assert printed["asyncapi"] == "3.0.0"
    channels = printed["channels"]
    assert sorted(channels) == ["kafka.payments", "kafka.signups", "rabbit.signups"]
    assert channels["kafka.signups"]["address"] == "signups"
    assert channels["kafka.payments"]["address"] == "payments"
    # FastStream's address of a queue bound to an exchange is its routing key; the queue
    # is named by the AMQP binding.
    rabbit = channels["rabbit.signups"]
    assert rabbit["address"] == "user.*"
    assert rabbit["bindings"]["amqp"]["queue"]["name"] == "signups-q"
    assert printed["operations"]["rabbit.signups"]["bindings"]["amqp"]["cc"] == ["user.*"]

    operations = printed["operations"]
    assert {op["channel"]["$ref"] for op in operations.values()} == {
        f"#/channels/{name}" for name in channels
    }
    assert {op["action"] for op in operations.values()} == {"receive"}
    for name, operation in operations.items():
        assert operation["channel"]["$ref"] == f"#/channels/{name}"
        assert operation["description"] == channels[name]["description"]
    assert channels["rabbit.signups"]["description"].endswith(
        "read by the routes welcome, welcome-again"
    )
    assert channels["kafka.signups"]["description"].endswith("read by the route welcome")
    assert channels["kafka.payments"]["description"].endswith("read by the route paid")


def test_servers_show_no_password_and_every_ref_resolves(printed: dict[str, Any]) -> None:
    servers = printed["servers"]
    assert servers["rabbit.signups"]["host"] == "127.0.0.1:5672"
    assert servers["rabbit.signups"]["protocol"] == "amqp"
    assert servers["rabbit.signups"]["pathname"] == "/shop"
    assert {servers[k]["host"] for k in servers if k.startswith("kafka")} == {
        "127.0.0.1:19092",
        "127.0.0.1:19093",
    }
    assert all("@" not in s["host"] for s in servers.values())
    for channel in printed["channels"].values():
        for ref in channel["servers"]:
            assert ref["$ref"].removeprefix("#/servers/") in servers

    def pointed(ref: str) -> Any:
        node: Any = printed
        for step in ref.removeprefix("#/").split("/"):
            node = node[step]
        return node

    refs: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k == "$ref")
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(printed)
    assert len(refs) > 10
    for ref in refs:
        pointed(ref)  # a dangling $ref raises KeyError


def test_the_document_is_valid_asyncapi_3(printed: dict[str, Any]) -> None:
    validate(printed)
    broken = json.loads(json.dumps(printed))
    broken["operations"]["kafka.signups"]["action"] = "consume"  # 3.0 says send|receive
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


def test_yaml_is_the_same_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], printed: dict[str, Any]
) -> None:
    path = tmp_path / "bridge.yaml"
    code, out, _ = command(capsys, "--config", str(path), "--format", "yaml")
    assert code == 0
    assert not out.lstrip().startswith("{")
    assert yaml.safe_load(out) == printed


def test_a_config_error_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = config_data(tmp_path)
    del data["sources"]["rabbit"]["signups"]["queue"]
    code, out, err = command(capsys, "--config", str(write_config(tmp_path, data)))
    assert code == 2
    assert "sources.rabbit.signups.queue" in out
    assert "1 problem" in err
    assert PASSWORD not in out + err


def test_merging_renames_what_collides_and_refs_follow() -> None:
    def part(name: str, host: str, payload: dict[str, Any]) -> Part:
        document = {
            "servers": {"development": {"host": host, "pathname": "", "protocol": "redis"}},
            "channels": {
                "stream": {
                    "address": "events",
                    "servers": [{"$ref": "#/servers/development"}],
                    "messages": {"M": {"$ref": "#/components/messages/M"}},
                }
            },
            "operations": {
                "streamSubscribe": {
                    "action": "receive",
                    "channel": {"$ref": "#/channels/stream"},
                    "messages": [{"$ref": "#/channels/stream/messages/M"}],
                }
            },
            "components": {
                "messages": {"M": {"payload": {"$ref": "#/components/schemas/P"}}},
                "schemas": {"P": payload},
            },
        }
        return Part(name, document, {"stream": name}, {name: f"{name}: read by the routes r"})

    merged = merge_documents(
        [
            part("redis.a", f"user:{PASSWORD}@127.0.0.1:6379", {"type": "object"}),
            part("redis.b", "127.0.0.1:6379", {"type": "string"}),
        ],
        {"title": "t", "version": "1"},
    )
    # The same server (once its password is cut out) is shared; the channels are the parts'.
    assert merged["servers"] == {
        "redis.a": {"host": "127.0.0.1:6379", "pathname": "", "protocol": "redis"}
    }
    assert PASSWORD not in json.dumps(merged)
    assert sorted(merged["channels"]) == ["redis.a", "redis.b"]
    assert sorted(merged["operations"]) == ["redis.a", "redis.b"]
    b_op = merged["operations"]["redis.b"]
    assert b_op["channel"] == {"$ref": "#/channels/redis.b"}
    assert b_op["messages"] == [{"$ref": "#/channels/redis.b/messages/M"}]
    assert b_op["description"] == "redis.b: read by the routes r"
    # Two different payloads under one key: the second part's is renamed, its refs follow.
    b_message = merged["channels"]["redis.b"]["messages"]["M"]["$ref"]
    assert b_message == "#/components/messages/redis.b.M"
    renamed = merged["components"]["messages"]["redis.b.M"]["payload"]["$ref"]
    assert merged["components"]["schemas"][renamed.rpartition("/")[2]] == {"type": "string"}
    assert merged["components"]["schemas"]["P"] == {"type": "object"}
    validate(merged)


async def test_the_worker_serves_the_same_document_and_no_page_or_try_route(
    tmp_path: Path, printed: dict[str, Any]
) -> None:
    config = load_config(tmp_path / "bridge.yaml", env={"BREW_API_KEY": API_KEY})
    async with (
        running_worker(config) as worker,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.port}") as http,
    ):
        served = await http.get("/asyncapi.json")
        assert served.status_code == 200
        assert served.headers["content-type"] == "application/json"
        assert served.json() == printed
        assert PASSWORD not in served.text
        assert (await http.get("/asyncapi")).status_code == 404
        assert (await http.post("/asyncapi/try", json={})).status_code == 404
        assert (await http.post("/asyncapi.json", json={})).status_code == 405


def test_nothing_subscribed_is_a_valid_document_without_channels() -> None:
    merged = merge_documents([], {"title": "brew-bridge", "version": "0"})
    assert "channels" not in merged
    assert "servers" not in merged
    validate(merged)


def test_every_queue_kind_is_described_and_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = config_data(tmp_path)
    data["sources"]["nats"] = {
        "orders": {
            "url": f"nats://bridge:{PASSWORD}@127.0.0.1:4222",
            "stream": "ORDERS",
            "subjects": ["orders.>"],
        }
    }
    data["sources"]["redis"] = {
        "payments": {
            "url": f"redis://:{PASSWORD}@127.0.0.1:6379/0",
            "stream": "payments-s",
            "consumer": "pod-0",
        }
    }
    data["routes"].append(
        {
            "name": "orders-and-payments",
            "sources": ["nats.orders", "redis.payments"],
            "trigger": "tri_welcome",
            "payload": {"email": "event.email"},
        }
    )
    code, out, err = command(capsys, "--config", str(write_config(tmp_path, data)))
    assert (code, err) == (0, ""), out
    assert PASSWORD not in out
    document = json.loads(out)
    validate(document)
    channels = document["channels"]
    assert {"rabbit.signups", "nats.orders", "redis.payments"} <= set(channels)
    assert channels["nats.orders"]["address"] == "orders.>"
    assert channels["redis.payments"]["address"] == "payments-s"
    for name in ("nats.orders", "redis.payments"):
        assert "orders-and-payments" in channels[name]["description"]
    actions = {op["action"] for op in document["operations"].values()}
    assert actions == {"receive"}


def test_a_worker_loads_faststream_only_when_the_document_is_asked_for() -> None:
    # Every start pays its imports before the first fire (bench/restart.py guards 1 s);
    # FastStream is ~0.2 s of them and only the document and the queue sources need it.
    code = (
        "import sys, brew_bridge.worker, brew_bridge.cli.run\n"
        "assert 'faststream' not in sys.modules, 'faststream loaded at import'\n"
        "from brew_bridge.asyncapi import asyncapi_document\n"
        "assert 'faststream' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
