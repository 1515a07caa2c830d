"""Which tiktoken encoding counts a given model, always served from the shipped tables.

Model names map to encodings exactly as ``tiktoken.encoding_for_model`` maps them (dated and
fine-tuned names included); unknown names use the counter's default. Every encoding tiktoken maps
a model to is shipped in ``budget_guard.encodings``; the few that share another's ranks
(``o200k_harmony``, ``p50k_edit``, ``gpt2``) differ only in special tokens, which counting never
recognises in text, so they are served by that table. tiktoken's own loader is never called: it
downloads, and a download that hangs stalls whatever waits for it. A name a newer tiktoken might
map a model to that budget-guard does not ship is counted with the default and logged once.
"""

from __future__ import annotations

import functools
import logging

import tiktoken
from tiktoken.model import encoding_name_for_model as _tiktoken_encoding_name

from budget_guard.encodings import (
    SHIPPED_ENCODINGS,
    load_shipped_encoding,
    loaded_shipped_encoding,
)

logger = logging.getLogger(__name__)

DEFAULT_ENCODING = "o200k_base"

# Same ranks as a shipped table (tiktoken loads the very same file for them); special tokens
# are never matched when counting text, so the shipped table counts them exactly.
_SAME_RANKS_AS_SHIPPED = {
    "o200k_harmony": "o200k_base",
    "p50k_edit": "p50k_base",
    "gpt2": "r50k_base",
}
SERVED_ENCODINGS: frozenset[str] = SHIPPED_ENCODINGS | _SAME_RANKS_AS_SHIPPED.keys()
"""Every encoding name counting accepts; none of them is ever downloaded."""


@functools.lru_cache(maxsize=4096)
def encoding_name_for_model(model: str | None, default: str = DEFAULT_ENCODING) -> str:
    """Encoding name for ``model``; cached because the same few names arrive on every request.

    A routing prefix such as ``openai/gpt-4o`` is tolerated: if the full name is unknown, the part
    after the last slash is tried before falling back to ``default``.
    """
    if not model:
        return default
    name = _tiktoken_name(model)
    if name is None:
        _, slash, bare = model.rpartition("/")
        if slash and bare:
            name = _tiktoken_name(bare)
    if name is None:
        return default
    if name not in SERVED_ENCODINGS:
        logger.warning(
            "tiktoken maps model %r to encoding %r, which budget-guard does not ship; "
            "counting it with %r instead of downloading",
            model,
            name,
            default,
        )
        return default
    return name


def _tiktoken_name(model: str) -> str | None:
    try:
        return _tiktoken_encoding_name(model)
    except KeyError:
        return None


def get_encoding(name: str) -> tiktoken.Encoding:
    """The encoding called ``name``, built from its shipped table on first use (a blocking read
    of a few hundred ms: call it off the event loop unless ``loaded_encoding`` says it is
    built)."""
    return load_shipped_encoding(_SAME_RANKS_AS_SHIPPED.get(name, name))


def loaded_encoding(name: str) -> tiktoken.Encoding | None:
    """The encoding called ``name`` if it is already built, else None; never blocks."""
    return loaded_shipped_encoding(_SAME_RANKS_AS_SHIPPED.get(name, name))


def require_known_encoding(name: str) -> None:
    """Reject a configured encoding name that is not shipped (it could only be downloaded)."""
    if name not in SERVED_ENCODINGS:
        raise ValueError(
            f"Unknown encoding {name!r}; known encodings: {', '.join(sorted(SERVED_ENCODINGS))}"
        )


def encoding_for_model(model: str | None, default: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    return get_encoding(encoding_name_for_model(model, default))


_NO_SPECIAL: frozenset[str] = frozenset()


class ByteBound:
    """Stands in for an encoding where a bound is enough: every token is at least one byte of
    the text's UTF-8, so its length is never less than the count. The request counters walk
    a body with it to check its shape and bound its cost without running the BPE (see
    ``RequestTokens``); ``name`` is the real encoding's, which a counter may branch on."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_BOUNDS: dict[str, ByteBound] = {}


def byte_bound(name: str) -> ByteBound:
    bound = _BOUNDS.get(name)
    if bound is None:
        bound = _BOUNDS[name] = ByteBound(name)
    return bound


def count_text(encoding: tiktoken.Encoding, text: str) -> int:
    """Tokens in user-supplied text; special-token strings in it are ordinary text, as upstream.
    Under a :class:`ByteBound`, the text's UTF-8 length instead (a lone surrogate is three
    bytes either way, as its replacement character is).

    Encodes into tiktoken's native buffer rather than a list: the same tokens as
    ``encode_ordinary`` (a test checks), but no Python int per token, which on a 10 MB prompt is
    a third of the time and a ~70 ms stretch holding the GIL (tiktoken releases it while
    encoding, so counting in a worker thread leaves the event loop free).
    """
    if type(encoding) is ByteBound:
        return len(text.encode("utf-8", "surrogatepass"))
    try:
        return _buffer_length(encoding, text)
    except UnicodeEncodeError:
        # Lone surrogates (valid JSON escapes): replaced as tiktoken's encode_ordinary does.
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return _buffer_length(encoding, text)


def _buffer_length(encoding: tiktoken.Encoding, text: str) -> int:
    buffer = encoding._core_bpe.encode_to_tiktoken_buffer(text, _NO_SPECIAL)
    return memoryview(buffer).nbytes // 4  # uint32 token ids
