"""The errors that stop a run of ``llmemf-data enrich`` or ``llmemf-data features`` (both print
the message and exit with status 2), and the one that only leaves an item for the next run."""

from __future__ import annotations


class EnrichError(RuntimeError):
    """Stops the whole run: bad input, bad configuration, or an endpoint that refuses us."""


class AuthError(EnrichError):
    """The endpoint refused the API key (HTTP 401/403)."""


class UnreachableError(EnrichError):
    """Several requests in a row could not connect: no server at the URL, or no network."""


class TransientError(RuntimeError):
    """A request still failed after its retries; the item stays uncached, retried next run."""


class FeatureError(RuntimeError):
    """Stops the run: bad input or a model that cannot be loaded."""
