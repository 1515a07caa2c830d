"""The one error counting raises, shaped so the middleware can answer like OpenAI does."""

from __future__ import annotations


class InvalidRequestBody(ValueError):
    """The body of a counted route is not JSON, not an object, or has a field of the wrong type.

    ``param`` names the offending field in OpenAI's notation (``messages.[0].content``), or is
    None when the body as a whole is unusable, so a 400 can say exactly what to fix.
    """

    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
