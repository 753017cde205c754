"""The mapping language, pure: expressions, templates, coercion, payload mapping,
idempotency keys and routing a record.

It names no broker and no vendor and never imports the config (which imports it to
validate expressions as a file loads): route specs, field specs and payload checks come
in through the protocols of :mod:`~brew_bridge.mapping.routing` and
:mod:`~brew_bridge.mapping.payload`.
"""

__all__: list[str] = []
