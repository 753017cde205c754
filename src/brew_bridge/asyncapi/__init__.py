"""The AsyncAPI 3.0 document of the configured subscriptions (``brew-bridge asyncapi``,
``GET /asyncapi.json``).

:func:`asyncapi_document` is imported on first use: it loads FastStream (~0.2 s), which
a worker that serves the document only when asked should not pay at every start (the
first fire after a restart waits for the imports).
"""

from typing import TYPE_CHECKING, Any

from brew_bridge.asyncapi.http import asyncapi_routes
from brew_bridge.asyncapi.merge import Part, merge_documents

if TYPE_CHECKING:
    from brew_bridge.asyncapi.document import asyncapi_document

__all__ = ["Part", "asyncapi_document", "asyncapi_routes", "merge_documents"]


def __getattr__(name: str) -> Any:
    if name == "asyncapi_document":
        from brew_bridge.asyncapi.document import asyncapi_document

        return asyncapi_document
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
