"""Combining authenticators, and plugging in the host application's own session auth."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from budget_guard.auth.identity import Authenticator, Identity


class CallableAuthenticator:
    """Adapts ``async def fn(headers) -> Identity | None`` (e.g. a cookie-session lookup in the
    host application) to :class:`Authenticator`. Exceptions from ``fn`` propagate: they are the
    host's bugs or outages, not bad credentials, and must not turn into silent 401s.
    """

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[Mapping[str, str]], Awaitable[Identity | None]]) -> None:
        self._fn = fn

    def __repr__(self) -> str:
        name = getattr(self._fn, "__qualname__", type(self._fn).__name__)
        return f"CallableAuthenticator({name})"

    async def authenticate(self, headers: Mapping[str, str]) -> Identity | None:
        identity = await self._fn(headers)
        if identity is not None and not isinstance(identity, Identity):
            raise TypeError(f"{self!r} returned {type(identity).__name__}, not Identity or None")
        return identity


class ChainAuthenticator:
    """Tries authenticators in order; the first identity wins (so put cheap ones first)."""

    __slots__ = ("_authenticators",)

    def __init__(self, authenticators: Sequence[Authenticator]) -> None:
        self._authenticators = tuple(authenticators)

    def __repr__(self) -> str:
        return f"ChainAuthenticator({list(self._authenticators)!r})"

    async def authenticate(self, headers: Mapping[str, str]) -> Identity | None:
        for authenticator in self._authenticators:
            identity = await authenticator.authenticate(headers)
            if identity is not None:
                return identity
        return None
