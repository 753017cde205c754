"""The ``webhooks:`` section: the signed HTTP sources, each under the name in its URL.

``POST /webhooks/{name}`` takes the deliveries of the source ``name``. Each declares its
scheme and where its secrets are (environment variables or mounted files, never the
YAML); several secrets are all accepted at once, so a rotation is: add the new one,
switch the provider, drop the old one.

The secrets are read by :func:`read_webhook_secrets` when the config is loaded; what is
read is kept on the config (never serialized, never printed). A variable that is not set
is not a problem for ``check`` and ``map`` (like the Brew API key); the worker refuses to
start without it (:func:`require_webhook_secrets`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from brew_bridge.config.problems import Source, config_problem, problem
from brew_bridge.config.routes import NAME
from brew_bridge.config.sections import Strict
from brew_bridge.errors import ConfigError, ConfigProblem

__all__ = [
    "SCHEME_TYPE_PATHS",
    "SecretRef",
    "WebhookScheme",
    "WebhookSourceConfig",
    "WebhooksConfig",
    "read_webhook_secrets",
    "require_webhook_secrets",
]

WebhookScheme = Literal["stripe", "standard", "svix", "shopify", "github", "hmac", "none"]

# Where each provider says what kind of event a delivery is: a route's match.type is
# read there unless the route sets match.type_path.
SCHEME_TYPE_PATHS: Final[Mapping[str, str]] = {
    "stripe": "event.type",
    "standard": "event.type",
    "svix": "event.type",
    "shopify": 'headers."x-shopify-topic"',
    "github": 'headers."x-github-event"',
    "none": "event.type",
}
# Schemes whose timestamp tolerance is the provider's own, not ours to configure.
_FIXED_TOLERANCE: Final = {"standard": 300.0, "svix": 300.0}
_TIMESTAMPED: Final = frozenset({"stripe", "standard", "svix"})


class SecretRef(Strict):
    """One secret: the environment variable or the mounted file that holds it."""

    env: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise config_problem(
                "a secret is {env: VARIABLE} or {file: /path/to/mounted/secret}",
                "write exactly one of env: or file: (the secret itself never goes in the YAML)",
            )
        return self

    @property
    def where(self) -> str:
        return f"${self.env}" if self.env is not None else str(self.file)


class WebhookSourceConfig(Strict):
    scheme: WebhookScheme
    secrets: list[SecretRef] = Field(default_factory=list)
    # Stripe and hmac with timestamp_header: how far a signed timestamp may be from now,
    # either way. Standard Webhooks fixes its own (5 minutes).
    tolerance_seconds: float | None = Field(None, gt=0)
    # hmac only: where the signature is, and how it is written.
    header: str | None = None
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""  # e.g. "sha256=" before the digest
    # hmac only: a timestamp header makes the signed text "<timestamp>.<body>".
    timestamp_header: str | None = None
    # hmac / none: the header holding the delivery id (a replay carries the same one);
    # without it, the id is the SHA-256 of the body.
    id_header: str | None = None
    # hmac only: where the event's type is (stripe, svix, shopify and github know theirs).
    type_path: str = "event.type"
    # Filled by read_webhook_secrets, never from the YAML: the secrets read, and the
    # variables named that are not set.
    resolved: tuple[SecretStr, ...] = Field((), exclude=True)
    unset: tuple[str, ...] = Field((), exclude=True)

    @field_validator("header", "timestamp_header", "id_header")
    @classmethod
    def _lower(cls, name: str | None) -> str | None:
        return name.lower() if name is not None else None

    @model_validator(mode="after")
    def _fits_scheme(self) -> WebhookSourceConfig:
        set_ = self.model_fields_set
        if self.scheme == "none":
            if self.secrets:
                raise config_problem(
                    "scheme: none verifies nothing, so it takes no secrets",
                    "choose the provider's scheme, or remove secrets:",
                )
        elif not self.secrets:
            raise config_problem(
                f"scheme {self.scheme} needs at least one secret",
                "add secrets: [{env: VARIABLE}] (or {file: /run/secrets/...})",
            )
        hmac_only = {"header", "encoding", "prefix", "timestamp_header", "type_path"} & set_
        if self.scheme != "hmac" and hmac_only:
            raise config_problem(
                f"{', '.join(sorted(hmac_only))} only apply to scheme: hmac",
                f"remove them: scheme {self.scheme} has its own headers",
            )
        if self.scheme == "hmac" and self.header is None:
            raise config_problem(
                "scheme hmac needs the name of its signature header",
                "add header: (e.g. X-Signature)",
            )
        if "id_header" in set_ and self.scheme not in ("hmac", "none"):
            raise config_problem(
                f"scheme {self.scheme} has its own delivery id; id_header does not apply",
                "remove id_header:",
            )
        if "tolerance_seconds" in set_:
            if self.scheme in _FIXED_TOLERANCE:
                raise config_problem(
                    "Standard Webhooks fixes the tolerance at 5 minutes",
                    "remove tolerance_seconds:",
                )
            if self.scheme not in _TIMESTAMPED and self.timestamp_header is None:
                raise config_problem(
                    f"scheme {self.scheme} signs no timestamp, so there is nothing to tolerate",
                    "remove tolerance_seconds: (or add timestamp_header: for hmac)",
                )
        return self

    @property
    def tolerance(self) -> float:
        """Seconds a signed timestamp may be off, either way."""
        if self.tolerance_seconds is not None:
            return self.tolerance_seconds
        return _FIXED_TOLERANCE.get(self.scheme, 300.0)

    @property
    def default_type_path(self) -> str:
        return SCHEME_TYPE_PATHS.get(self.scheme, self.type_path)

    @property
    def default_id_path(self) -> str:
        """Where a delivery's own id is: the delivery id, which is the record's position.
        Stripe's is the event's id, so a route over a topic and Stripe's webhook keys an
        event the same whichever way it came (and fires it once)."""
        return "event.id" if self.scheme == "stripe" else "position"


_NAME_FIX = "use 1-64 letters, digits, '_', '.' or '-' (it is the last segment of the URL)"


class WebhooksConfig(Strict):
    # null: served on server.port beside /metrics; else a port of their own (a public
    # ingress can then reach the webhooks and not the metrics).
    port: int | None = Field(None, ge=0, le=65535)
    host: str | None = None  # null: server.host
    # Bodies larger than this (or than kafka.max_record_bytes) are refused with 413 while
    # they are read.
    max_body_bytes: int = Field(1_048_576, ge=1)
    # A sender that has not finished its body by then gets 408.
    read_timeout_seconds: float = Field(10.0, gt=0)
    # Seconds a 503 asks the provider to wait (the outbox is full or unavailable).
    retry_after_seconds: int = Field(30, ge=1)
    sources: dict[str, WebhookSourceConfig] = Field(default_factory=dict)

    @field_validator("sources")
    @classmethod
    def _names(cls, sources: dict[str, WebhookSourceConfig]) -> dict[str, WebhookSourceConfig]:
        for name in sources:
            if not NAME.fullmatch(name):
                raise config_problem(f"{name!r} is not a usable webhook source name", _NAME_FIX)
        return sources


def _standard_secret_problem(value: str) -> str | None:
    """Why a Standard Webhooks secret cannot be used (it is base64, often after whsec_)."""
    body = value.removeprefix("whsec_")
    try:
        return None if base64.b64decode(body + "==", validate=True) else "it is empty"
    except binascii.Error:
        return "it is not base64 (a Standard Webhooks secret looks like whsec_<base64>)"


def read_webhook_secrets(
    webhooks: WebhooksConfig, env: Mapping[str, str], source: Source
) -> tuple[WebhooksConfig, list[ConfigProblem]]:
    """``webhooks`` with every source's secrets read, and what could not be read."""
    problems: list[ConfigProblem] = []
    sources: dict[str, WebhookSourceConfig] = {}
    for name, config in webhooks.sources.items():
        values: list[SecretStr] = []
        unset: list[str] = []
        for index, ref in enumerate(config.secrets):
            at = ("webhooks", "sources", name, "secrets", index)
            if ref.env is not None:
                value = env.get(ref.env, "").strip()
                if ref.env not in env:
                    unset.append(ref.env)
                    continue
                if not value:
                    problems.append(
                        problem(source, at, f"{ref.env} is empty", f"set {ref.env} to the secret")
                    )
                    continue
            else:
                try:
                    value = Path(str(ref.file)).read_text(encoding="utf-8").strip()
                except (OSError, UnicodeDecodeError) as exc:
                    reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                    fix = "mount the secret there"
                    problems.append(problem(source, at, f"cannot read {ref.file}: {reason}", fix))
                    continue
                if not value:
                    problems.append(problem(source, at, f"{ref.file} is empty", "write the secret"))
                    continue
            if config.scheme in ("standard", "svix"):
                why = _standard_secret_problem(value)
                if why is not None:
                    message = f"the secret in {ref.where} is not usable: {why}"
                    fix = "copy the signing secret from the provider's dashboard"
                    problems.append(problem(source, at, message, fix))
                    continue
            values.append(SecretStr(value))
        sources[name] = config.model_copy(update={"resolved": tuple(values), "unset": tuple(unset)})
    return webhooks.model_copy(update={"sources": sources}), problems


def require_webhook_secrets(webhooks: WebhooksConfig) -> None:
    """Raise :class:`ConfigError` naming every secret variable a source needs and lacks."""
    problems = [
        ConfigProblem(
            "environment",
            variable,
            "is not set",
            f"set {variable} to webhook source {name!r}'s signing secret "
            "(or remove it from webhooks.sources." + name + ".secrets)",
        )
        for name, config in webhooks.sources.items()
        for variable in config.unset
    ]
    if problems:
        raise ConfigError(problems)
