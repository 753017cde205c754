"""The webhooks: section: each problem names the file, the key, the line and the fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from brew_bridge.config import compiled_routes, load_config
from brew_bridge.config.webhooks import require_webhook_secrets
from brew_bridge.errors import ConfigError, ConfigProblem

WriteConfig = Callable[[str], Path]

SECRET = "whsec_0123456789abcdef0123"

CONFIG = """
webhooks:
  sources:
    stripe:
      scheme: stripe
      secrets: [{env: STRIPE_WEBHOOK_SECRET}]
    gh:
      scheme: github
      secrets: [{file: SECRET_FILE}]
triggers:
  tri_welcome:
    payload_schema:
      type: object
      fields: [{key: email, type: string, required: true}]
routes:
  - name: stripe-welcome
    webhooks: [stripe]
    match: {type: customer.created}
    trigger: tri_welcome
    payload: {email: event.data.object.email}
  - name: github-star
    webhooks: [gh]
    match: {type: star}
    trigger: tri_welcome
    payload: {email: event.sender.email}
"""


def problems_of(path: Path, env: dict[str, str]) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    return info.value.problems


def only(problems: list[ConfigProblem], key_path: str) -> ConfigProblem:
    found = [p for p in problems if p.key_path == key_path]
    assert len(found) == 1, f"{key_path}: {problems}"
    return found[0]


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "github-secret"
    path.write_text("github-secret-value\n")
    return path


def config_text(secret_file: Path, text: str = CONFIG) -> str:
    return text.replace("SECRET_FILE", str(secret_file))


def test_secrets_come_from_env_and_files_and_routes_default_to_the_provider(
    write_config: WriteConfig, secret_file: Path
) -> None:
    config = load_config(
        write_config(config_text(secret_file)), env={"STRIPE_WEBHOOK_SECRET": SECRET}
    )
    sources = config.webhooks.sources
    assert [s.get_secret_value() for s in sources["stripe"].resolved] == [SECRET]
    assert [s.get_secret_value() for s in sources["gh"].resolved] == ["github-secret-value"]
    routes = compiled_routes(config)
    assert routes.streams_of("webhook") == frozenset({"stripe", "gh"})
    assert routes.streams_of("kafka") == frozenset()
    by_name = {route.name: route for route in routes.routes}
    # GitHub says the event type in a header; a webhook's id is its delivery id.
    assert by_name["github-star"].type_path.text == 'headers."x-github-event"'
    assert by_name["stripe-welcome"].type_path.text == "event.type"
    # Stripe's delivery id is the event's id; GitHub's is the record position.
    assert by_name["stripe-welcome"].key.templates[0] == "{route}:{event.id}"
    assert by_name["github-star"].key.templates[0] == "{route}:{position}"
    assert SECRET not in config.model_dump_json()


def test_an_unset_secret_is_for_the_worker_to_refuse_naming_the_variable(
    write_config: WriteConfig, secret_file: Path
) -> None:
    # check and map need no secret (as with the Brew API key); the worker does.
    config = load_config(write_config(config_text(secret_file)), env={})
    with pytest.raises(ConfigError) as caught:
        require_webhook_secrets(config.webhooks)
    [problem] = caught.value.problems
    assert problem.key_path == "STRIPE_WEBHOOK_SECRET"
    assert problem.message == "is not set"
    assert "set STRIPE_WEBHOOK_SECRET" in problem.fix
    empty = problems_of(write_config(config_text(secret_file)), {"STRIPE_WEBHOOK_SECRET": " "})
    assert "is empty" in only(empty, "webhooks.sources.stripe.secrets[0]").message


def test_an_unreadable_secret_file_names_the_file(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    path = write_config(config_text(tmp_path / "missing"))
    problem = only(
        problems_of(path, {"STRIPE_WEBHOOK_SECRET": SECRET}), "webhooks.sources.gh.secrets[0]"
    )
    assert str(tmp_path / "missing") in problem.message
    assert "mount" in problem.fix


def test_a_route_naming_an_undeclared_webhook_source_gets_the_closest(
    write_config: WriteConfig, secret_file: Path
) -> None:
    text = config_text(secret_file).replace("webhooks: [stripe]", "webhooks: [strpe]")
    problem = only(
        problems_of(write_config(text), {"STRIPE_WEBHOOK_SECRET": SECRET}),
        "routes[0].webhooks[0]",
    )
    assert "'strpe' is not declared under webhooks.sources" in problem.message
    assert "'stripe'" in problem.fix


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{scheme: stripe}", "needs at least one secret"),
        ("{scheme: none, secrets: [{env: X}]}", "takes no secrets"),
        ("{scheme: hmac, secrets: [{env: X}]}", "needs the name of its signature header"),
        ("{scheme: stripe, secrets: [{env: X}], header: X-Sig}", "only apply to scheme: hmac"),
        ("{scheme: svix, secrets: [{env: X}], tolerance_seconds: 60}", "fixes the tolerance"),
        ("{scheme: github, secrets: [{env: X}], tolerance_seconds: 60}", "signs no timestamp"),
        ("{scheme: stripe, secrets: [{env: X, file: /y}]}", "exactly one of env: or file:"),
        ("{scheme: github, secrets: [{env: X}], id_header: X-Id}", "has its own delivery id"),
        ("{scheme: paypal, secrets: [{env: X}]}", "stripe"),
    ],
)
def test_a_source_that_does_not_fit_its_scheme_says_why(
    write_config: WriteConfig, source: str, message: str
) -> None:
    text = f"webhooks:\n  sources:\n    s1: {source}\n"
    problems = problems_of(write_config(text), {"X": "secret-value-0123"})
    found = [p for p in problems if p.key_path.startswith("webhooks.sources.s1")]
    assert found, problems
    assert any(message in p.message or message in p.fix for p in found), found


def test_a_svix_secret_that_is_not_base64_is_refused(write_config: WriteConfig) -> None:
    text = "webhooks:\n  sources:\n    clerk: {scheme: svix, secrets: [{env: CLERK}]}\n"
    problem = only(
        problems_of(write_config(text), {"CLERK": "whsec_not base64!"}),
        "webhooks.sources.clerk.secrets[0]",
    )
    assert "not base64" in problem.message
    assert "whsec_not" not in problem.message  # the secret itself is never quoted


def test_a_route_needs_a_source(write_config: WriteConfig, secret_file: Path) -> None:
    text = config_text(secret_file).replace("    webhooks: [gh]\n", "")
    problems = problems_of(write_config(text), {"STRIPE_WEBHOOK_SECRET": SECRET})
    message = only(problems, "routes[1]").message
    assert "at least one Kafka topic, webhook source or queue source" in message


def test_a_route_over_sources_that_disagree_on_the_type_must_say_where(
    write_config: WriteConfig, secret_file: Path
) -> None:
    text = config_text(secret_file).replace("webhooks: [stripe]", "webhooks: [stripe, gh]")
    problem = only(
        problems_of(write_config(text), {"STRIPE_WEBHOOK_SECRET": SECRET}),
        "routes[0].match.type_path",
    )
    assert "different places" in problem.message
    assert "set type_path" in problem.fix
