"""Which tiktoken encoding counts a given model, resolved without ever downloading a shipped one.

Model names map to encodings exactly as ``tiktoken.encoding_for_model`` maps them (dated and
fine-tuned names included); unknown names use the counter's default. ``cl100k_base`` and
``o200k_base`` come from the tables shipped in ``budget_guard.encodings``. ``o200k_harmony`` has
the same ranks as ``o200k_base`` and differs only in special tokens, which counting never
recognises in text, so it is served by the shipped table too. Older encodings (``p50k_base``,
``r50k_base``...) go through tiktoken's own loader, so a populated ``TIKTOKEN_CACHE_DIR`` still
works; if that fails the nearest shipped encoding is used and the fact is logged once.
"""

from __future__ import annotations

import functools
import logging
import threading

import tiktoken
from tiktoken.model import encoding_name_for_model as _tiktoken_encoding_name

from budget_guard.encodings import SHIPPED_ENCODINGS, load_shipped_encoding

logger = logging.getLogger(__name__)

DEFAULT_ENCODING = "o200k_base"

# Same ranks as the shipped table; special tokens are never matched when counting text.
_SAME_RANKS_AS_SHIPPED = {"o200k_harmony": "o200k_base"}
# The shipped table whose vocabulary is closest, used when tiktoken cannot load one.
_NEAREST_SHIPPED = {
    "gpt2": "cl100k_base",
    "r50k_base": "cl100k_base",
    "p50k_base": "cl100k_base",
    "p50k_edit": "cl100k_base",
}

_lock = threading.Lock()
_other_encodings: dict[str, tiktoken.Encoding] = {}


@functools.lru_cache(maxsize=4096)
def encoding_name_for_model(model: str | None, default: str = DEFAULT_ENCODING) -> str:
    """Encoding name for ``model``; cached because the same few names arrive on every request.

    A routing prefix such as ``openai/gpt-4o`` is tolerated: if the full name is unknown, the part
    after the last slash is tried before falling back to ``default``.
    """
    if not model:
        return default
    try:
        return _tiktoken_encoding_name(model)
    except KeyError:
        pass
    _, slash, bare = model.rpartition("/")
    if slash and bare:
        try:
            return _tiktoken_encoding_name(bare)
        except KeyError:
            pass
    return default


def get_encoding(name: str) -> tiktoken.Encoding:
    """The encoding called ``name``, from the shipped tables whenever they can serve it."""
    name = _SAME_RANKS_AS_SHIPPED.get(name, name)
    if name in SHIPPED_ENCODINGS:
        return load_shipped_encoding(name)
    encoding = _other_encodings.get(name)
    if encoding is not None:
        return encoding
    with _lock:
        encoding = _other_encodings.get(name)
        if encoding is None:
            encoding = _load_through_tiktoken(name)
            _other_encodings[name] = encoding
    return encoding


def require_known_encoding(name: str) -> None:
    """Reject a configured encoding name neither shipped nor known to tiktoken."""
    known = SHIPPED_ENCODINGS | _SAME_RANKS_AS_SHIPPED.keys() | set(tiktoken.list_encoding_names())
    if name not in known:
        raise ValueError(f"Unknown encoding {name!r}; known encodings: {', '.join(sorted(known))}")


def encoding_for_model(model: str | None, default: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    return get_encoding(encoding_name_for_model(model, default))


def count_text(encoding: tiktoken.Encoding, text: str) -> int:
    """Tokens in user-supplied text; special-token strings in it are ordinary text, as upstream."""
    return len(encoding.encode_ordinary(text))


def _load_through_tiktoken(name: str) -> tiktoken.Encoding:
    try:
        return tiktoken.get_encoding(name)
    except Exception as exc:  # tiktoken raises whatever its download or parse raised
        fallback = _NEAREST_SHIPPED.get(name, DEFAULT_ENCODING)
        logger.warning(
            "tiktoken could not load encoding %r (%s); counting with the shipped %r instead",
            name,
            exc,
            fallback,
        )
        return load_shipped_encoding(fallback)
