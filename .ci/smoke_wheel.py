"""The smoke test of the installed wheel (not the source tree), run by .ci/run.

Run with the python of a fresh virtual environment holding only the wheel and its pinned
dependencies, from a directory outside the repository, so nothing is imported from
``src/``. It checks that the package comes from site-packages, that ``check`` passes on
the example config, then runs the real thing: the Brew simulator and ``brew-bridge run``
on the example's Stripe-webhook routes (no Kafka: the wheel does not ship the test broker),
posts one signed Stripe delivery, waits for its fire at the simulator and its run's end
in ``/metrics``, and stops the bridge with SIGTERM, which must exit 0.

Standard library only (and PyYAML, a dependency of the wheel), so it needs no test extras.

    python .ci/smoke_wheel.py REPO
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

SECRET = "whsec_smoke_" + "0" * 24  # a throwaway signing secret for this run only
DEADLINE_SECONDS = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 -- loopback
        body: bytes = answer.read()
        return body


def answers(url: str) -> bool:
    get(url)  # raises (an OSError) until something serves it
    return True


def wait_for(what: str, check: Callable[[], bool], procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        for proc in procs:
            if proc.poll() is not None:
                sys.exit(f"smoke: {proc.args!r} exited with {proc.returncode} before {what}")
        try:
            if check():
                print(f"smoke: ok: {what}")
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"smoke: gave up waiting for {what}")
        time.sleep(0.2)


def smoke_config(repo: Path, brew_port: int, server_port: int) -> dict[str, object]:
    """The example config with only its Brew routes that read the Stripe webhooks."""
    config: dict[str, Any] = yaml.safe_load((repo / "config" / "example.yaml").read_text())
    routes = [
        {**route, "topics": []}
        for route in config["routes"]
        if "stripe" in route.get("webhooks", []) and route.get("target", "brew") == "brew"
    ]
    if not routes:
        sys.exit("smoke: the example config has no Brew route reading the stripe webhooks")
    config["routes"] = routes
    config.pop("targets", None)
    config["webhooks"]["sources"] = {"stripe": config["webhooks"]["sources"]["stripe"]}
    config["brew"]["base_url"] = f"http://127.0.0.1:{brew_port}/api"
    config["server"]["port"] = server_port
    return config


def signed_delivery(repo: Path) -> tuple[bytes, str]:
    """The saved Stripe delivery's body, signed now with SECRET (Stripe's v1 scheme)."""
    saved = (repo / "config" / "samples" / "webhooks" / "stripe_invoice_paid.http").read_bytes()
    body = saved.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]
    stamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return body, f"t={stamp},v1={digest}"


def main(repo: Path) -> None:
    import brew_bridge

    where = Path(brew_bridge.__file__).resolve()
    if repo.resolve() in where.parents or "site-packages" not in where.parts:
        sys.exit(f"smoke: brew_bridge was imported from {where}, not from the installed wheel")
    print(f"smoke: ok: brew_bridge {brew_bridge.__version__} from {where.parent}")
    bin_dir = Path(sys.executable).parent
    cli = str(bin_dir / "brew-bridge")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        brew_port, server_port = free_port(), free_port()
        config_path = work / "smoke.yaml"
        config_path.write_text(yaml.safe_dump(smoke_config(repo, brew_port, server_port)))
        env = {
            **os.environ,
            "BREW_API_KEY": "brew_dev_local_key",
            "STRIPE_WEBHOOK_SECRET": SECRET,
            "BREW_BRIDGE_OUTBOX__PATH": str(work / "outbox.db"),
        }
        subprocess.run([cli, "check", "--config", str(config_path)], check=True, cwd=work)  # noqa: S603
        print("smoke: ok: check")

        seed = repo / "config" / "sim-seed.yaml"
        sim = subprocess.Popen(  # noqa: S603 -- the installed CLI
            [cli, "sim", "--port", str(brew_port), "--seed", str(seed)], cwd=work
        )
        procs = [sim]
        try:
            sim_url = f"http://127.0.0.1:{brew_port}/_sim/requests"
            wait_for("the simulator answers", lambda: answers(sim_url), procs)
            bridge = subprocess.Popen(  # noqa: S603 -- the installed CLI
                [cli, "run", "--config", str(config_path)],
                cwd=work,
                env=env,
                stderr=(work / "bridge.log").open("wb"),
            )
            procs.append(bridge)
            base = f"http://127.0.0.1:{server_port}"
            wait_for("the bridge is ready", lambda: answers(f"{base}/readyz"), procs)

            body, signature = signed_delivery(repo)
            request = urllib.request.Request(  # noqa: S310 -- loopback
                f"{base}/webhooks/stripe",
                data=body,
                headers={"Content-Type": "application/json", "Stripe-Signature": signature},
            )
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                print(f"smoke: ok: the signed delivery was answered {answer.status}")

            def fired() -> bool:
                requests = json.loads(get(sim_url))["data"]
                return any(str(r.get("path", "")).endswith("/fire") for r in requests)

            wait_for("a fire reached the simulator", fired, procs)

            def ended() -> bool:
                text = get(f"{base}/metrics").decode()
                return any(
                    line.startswith("brew_bridge_runs_terminal_total{")
                    and not line.endswith(" 0.0")
                    for line in text.splitlines()
                )

            wait_for("a run reached its end in /metrics", ended, procs)
            bridge.send_signal(signal.SIGTERM)
            code = bridge.wait(30)
            if code != 0:
                sys.exit(f"smoke: the bridge exited {code} on SIGTERM (log: {work}/bridge.log)")
            print("smoke: ok: SIGTERM stopped the bridge with exit 0")
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(10)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
