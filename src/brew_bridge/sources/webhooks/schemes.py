"""How each provider signs a delivery, and where it puts the delivery's id: pure functions.

A verifier takes the request headers (names lower-case), the raw body and the time, and
returns :class:`Verified` or raises :class:`Refused`. It runs before the body is parsed.
Every comparison is :func:`hmac.compare_digest`; every secret of a source is tried, so
a rotation accepts the old and the new secret at once.

* ``stripe``: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]``, HMAC-SHA256 of
  ``<t>.<body>``; the timestamp within the tolerance either way;
* ``standard`` / ``svix``: Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature``, or their ``svix-`` spellings), verified by the
  ``standardwebhooks`` reference library (5 minutes, its own clock);
* ``shopify``: ``X-Shopify-Hmac-Sha256``, base64 HMAC-SHA256 of the body;
* ``github``: ``X-Hub-Signature-256: sha256=<hex>`` of the body;
* ``hmac``: a named header, hex or base64, an optional prefix; with a timestamp header
  the signed text is ``<timestamp>.<body>``;
* ``none``: nothing is verified (written explicitly, warned about).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from brew_bridge.config.webhooks import WebhookSourceConfig

__all__ = [
    "DROPPED_HEADERS",
    "Refused",
    "Scheme",
    "Verified",
    "build_scheme",
]

# Never kept with a record: credentials, the signatures themselves, transport framing.
DROPPED_HEADERS: Final = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "content-length",
        "connection",
        "transfer-encoding",
        "stripe-signature",
        "webhook-signature",
        "svix-signature",
        "x-shopify-hmac-sha256",
        "x-hub-signature",
        "x-hub-signature-256",
    }
)


class Refused(Exception):
    """The delivery is not authentic (or not fresh): answered 401, never stored.

    ``outcome`` is the metric label; the message says why without quoting a secret or
    the signature.
    """

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message


@dataclass(frozen=True)
class Verified:
    """An authentic delivery: its signed timestamp (epoch seconds), if the scheme has one."""

    timestamp: float | None = None


Headers = Mapping[str, str]
Verifier = Callable[[Headers, bytes, float], Verified]


@dataclass(frozen=True)
class Scheme:
    """One source's verifier, and where its deliveries carry their id."""

    name: str
    verify: Verifier
    # The provider's delivery id (the same on every redelivery), or None when the
    # delivery carries none (then the body's SHA-256 stands in).
    delivery_id: Callable[[Headers, Any], str | None]
    dropped_headers: frozenset[str] = DROPPED_HEADERS


def _secrets(config: WebhookSourceConfig) -> list[bytes]:
    return [secret.get_secret_value().encode() for secret in config.resolved]


def _matches(expected: Sequence[bytes], given: Sequence[bytes]) -> bool:
    """Any given signature equals any expected one; every pair compared in full."""
    found = False
    for e in expected:
        for g in given:
            found |= hmac.compare_digest(e, g)
    return found


def _check_time(timestamp: float, now: float, tolerance: float) -> None:
    if timestamp < now - tolerance:
        raise Refused("stale_timestamp", f"the signed timestamp is {now - timestamp:.0f}s old")
    if timestamp > now + tolerance:
        raise Refused(
            "future_timestamp", f"the signed timestamp is {timestamp - now:.0f}s in the future"
        )


def _parse_time(text: str, header: str) -> float:
    try:
        return float(int(text.strip()))
    except ValueError:
        raise Refused("bad_signature", f"{header}'s timestamp is not a whole number") from None


def _digest(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _stripe(config: WebhookSourceConfig) -> Verifier:
    secrets, tolerance = _secrets(config), config.tolerance

    def verify(headers: Headers, body: bytes, now: float) -> Verified:
        header = headers.get("stripe-signature")
        if not header:
            raise Refused("missing_signature", "no Stripe-Signature header")
        pairs = [item.split("=", 1) for item in header.split(",") if "=" in item]
        stamps = [value for key, value in pairs if key.strip() == "t"]
        given = [value.strip().encode("latin-1") for key, value in pairs if key.strip() == "v1"]
        if not stamps or not given:
            raise Refused("bad_signature", "Stripe-Signature has no t= or no v1= part")
        signed = stamps[0].strip().encode("latin-1") + b"." + body
        expected = [_digest(key, signed).hex().encode() for key in secrets]
        if not _matches(expected, given):
            raise Refused("bad_signature", "no v1 signature matches a configured secret")
        timestamp = _parse_time(stamps[0], "Stripe-Signature")
        _check_time(timestamp, now, tolerance)
        return Verified(timestamp)

    return verify


def _standard(config: WebhookSourceConfig) -> Verifier:
    signers = [Webhook(secret.get_secret_value()) for secret in config.resolved]

    def verify(headers: Headers, body: bytes, now: float) -> Verified:
        names = ("id", "timestamp", "signature")
        found = {n: headers.get(f"webhook-{n}") or headers.get(f"svix-{n}") for n in names}
        if not found["signature"]:
            raise Refused("missing_signature", "no webhook-signature (or svix-signature) header")
        if not found["id"] or not found["timestamp"]:
            raise Refused("bad_signature", "webhook-id and webhook-timestamp are required")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused("bad_signature", "the body is not UTF-8, so it is not signed") from None
        wire = {f"webhook-{n}": str(v) for n, v in found.items()}
        why = "no signature matches a configured secret"
        for signer in signers:
            try:
                signer.verify(text, wire, json_parse=False)
            except WebhookVerificationError as exc:
                why = str(exc)
                if "too old" in why:
                    raise Refused("stale_timestamp", "the signed timestamp is too old") from None
                if "too new" in why:
                    raise Refused("future_timestamp", "the timestamp is in the future") from None
                continue
            except (ValueError, binascii.Error):  # a malformed signature list
                why = "webhook-signature is not a list of v1,<base64>"
                continue
            return Verified(_parse_time(str(found["timestamp"]), "webhook-timestamp"))
        raise Refused("bad_signature", why)

    return verify


def _body_hmac(
    header: str, encode: Callable[[bytes], bytes], prefix: bytes, config: WebhookSourceConfig
) -> Verifier:
    """A signature over the body alone (Shopify, GitHub, and hmac without a timestamp)."""
    secrets = _secrets(config)
    stamp_header, tolerance = config.timestamp_header, config.tolerance

    def verify(headers: Headers, body: bytes, now: float) -> Verified:
        value = headers.get(header)
        if not value:
            raise Refused("missing_signature", f"no {header} header")
        given = value.strip().encode("latin-1")
        if prefix and not given.startswith(prefix):
            raise Refused("bad_signature", f"{header} does not start with {prefix.decode()}")
        stamp = headers.get(stamp_header) if stamp_header is not None else None
        if stamp_header is not None and not stamp:
            raise Refused("missing_signature", f"no {stamp_header} header")
        signed = body if stamp is None else stamp.strip().encode("latin-1") + b"." + body
        expected = [prefix + encode(_digest(key, signed)) for key in secrets]
        if not _matches(expected, [given]):
            raise Refused("bad_signature", f"{header} matches no configured secret")
        if stamp is None:
            return Verified()
        timestamp = _parse_time(stamp, str(stamp_header))
        _check_time(timestamp, now, tolerance)
        return Verified(timestamp)

    return verify


def _hex(digest: bytes) -> bytes:
    return digest.hex().encode()


def _unverified(_headers: Headers, _body: bytes, _now: float) -> Verified:
    return Verified()


def _header(name: str | None) -> Callable[[Headers, Any], str | None]:
    def get(headers: Headers, _event: Any) -> str | None:
        return headers.get(name) or None if name is not None else None

    return get


def _event_id(_headers: Headers, event: Any) -> str | None:
    value = event.get("id") if isinstance(event, dict) else None
    return value if isinstance(value, str) and value else None


def _standard_id(headers: Headers, _event: Any) -> str | None:
    return headers.get("webhook-id") or headers.get("svix-id") or None


def build_scheme(config: WebhookSourceConfig) -> Scheme:
    """The verifier and delivery id of one configured source (secrets already read)."""
    kind = config.scheme
    if kind == "stripe":
        return Scheme(kind, _stripe(config), _event_id)
    if kind in ("standard", "svix"):
        return Scheme(kind, _standard(config), _standard_id)
    if kind == "shopify":
        verify = _body_hmac("x-shopify-hmac-sha256", base64.b64encode, b"", config)
        return Scheme(kind, verify, _header("x-shopify-webhook-id"))
    if kind == "github":
        verify = _body_hmac("x-hub-signature-256", _hex, b"sha256=", config)
        return Scheme(kind, verify, _header("x-github-delivery"))
    if kind == "hmac":
        assert config.header is not None  # the config model requires it
        encode = _hex if config.encoding == "hex" else base64.b64encode
        verify = _body_hmac(config.header, encode, config.prefix.encode(), config)
        return Scheme(kind, verify, _header(config.id_header), DROPPED_HEADERS | {config.header})
    return Scheme(kind, _unverified, _header(config.id_header))
