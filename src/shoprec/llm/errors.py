"""Typed failures of an LLM call, so a route maps each to one status: unavailable 503, timeout 504, bad request 400,
bad output 502. The names say the condition a caller catches (hence no "Error" suffix).
"""

from __future__ import annotations


class LLMError(Exception):
    """Base of every LLM failure."""


class LLMUnavailable(LLMError):  # noqa: N818
    """No answer can come: no backend configured, the server unreachable or overloaded after retries, or no usable
    model file.
    """


class ModelNotInstalled(LLMUnavailable):
    """The packages that ship a model's weights are not installed; the message names the pip command."""


class ModelIntegrityError(LLMUnavailable):
    """A model file whose size or sha256 is not the pinned one: refused rather than loaded."""


class LLMTimeout(LLMError):  # noqa: N818
    """The request's time budget ran out (queueing, retries and generation together)."""


class LLMBadRequest(LLMError):  # noqa: N818
    """The server refused the request (HTTP 4xx other than 429): retrying the same request cannot help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class LLMBadOutput(LLMError):  # noqa: N818
    """The server answered, but not with what was asked for (e.g. text that is not the requested JSON)."""
