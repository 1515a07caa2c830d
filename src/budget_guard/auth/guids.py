"""Guid parsing in the forms a .NET client writes them (hyphenated, bare 32 digits, braces).

``uuid.UUID`` alone also accepts ``urn:uuid:`` prefixes and hyphens in arbitrary places, which
ServiceStack does not; a company id is an authorization input, so only the documented forms pass.
"""

from __future__ import annotations

import re
from uuid import UUID

_HEX = "[0-9a-fA-F]"
_HYPHENATED = f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
_BARE = f"{_HEX}{{32}}"
_GUID = re.compile(rf"\{{(?:{_HYPHENATED}|{_BARE})\}}|{_HYPHENATED}|{_BARE}")


def parse_guid(text: object) -> UUID | None:
    """``text`` as a UUID, or ``None`` when it is not a string in one of the accepted forms."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    candidate = text.strip()
    if _GUID.fullmatch(candidate) is None:
        return None
    return UUID(candidate.strip("{}"))
