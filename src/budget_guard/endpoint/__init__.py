"""The documented usage endpoint, ``POST /assistant/ai-chat/usage`` (and ``GET``).

Assembled from the ledger, the authenticators and the wire layer; this package only adds the
HTTP plumbing: paths, the body cap, idempotent retries, the OpenAPI document.
"""

from budget_guard.endpoint.app import UsageEndpoint
from budget_guard.endpoint.openapi import openapi_document
from budget_guard.endpoint.settings import EndpointSettings

__all__ = ["EndpointSettings", "UsageEndpoint", "openapi_document"]
