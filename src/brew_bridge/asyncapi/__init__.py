"""The AsyncAPI 3.0 document of the configured subscriptions (``brew-bridge asyncapi``,
``GET /asyncapi.json``)."""

from brew_bridge.asyncapi.document import asyncapi_document
from brew_bridge.asyncapi.http import asyncapi_routes
from brew_bridge.asyncapi.merge import Part, merge_documents

__all__ = ["Part", "asyncapi_document", "asyncapi_routes", "merge_documents"]
