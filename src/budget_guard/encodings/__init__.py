"""The BPE tables budget-guard ships, so counting never downloads anything.

tiktoken fetches its rank files from the internet on first use; air-gapped deployments cannot
allow that. The two encodings every current OpenAI model uses are shipped here gzipped and built
into ``tiktoken.Encoding`` objects with the same regex and special tokens as
``tiktoken_ext.openai_public``. Each is read, checked against tiktoken's own sha256 and built at
most once per process, on first use (or at start-up through ``preload``).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
from importlib import resources

import tiktoken

__all__ = ["SHIPPED_ENCODINGS", "EncodingIntegrityError", "load_shipped_encoding", "preload"]

_ENDOFTEXT = "<|endoftext|>"
_FIM_PREFIX = "<|fim_prefix|>"
_FIM_MIDDLE = "<|fim_middle|>"
_FIM_SUFFIX = "<|fim_suffix|>"
_ENDOFPROMPT = "<|endofprompt|>"

# Copied from tiktoken_ext/openai_public.py (tiktoken 0.14); a test checks they still agree.
_CL100K_PAT_STR = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT_STR = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)


class _Spec:
    __slots__ = ("pat_str", "sha256", "special_tokens")

    def __init__(self, pat_str: str, sha256: str, special_tokens: dict[str, int]) -> None:
        self.pat_str = pat_str
        self.sha256 = sha256
        self.special_tokens = special_tokens


_SPECS: dict[str, _Spec] = {
    "cl100k_base": _Spec(
        _CL100K_PAT_STR,
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        {
            _ENDOFTEXT: 100257,
            _FIM_PREFIX: 100258,
            _FIM_MIDDLE: 100259,
            _FIM_SUFFIX: 100260,
            _ENDOFPROMPT: 100276,
        },
    ),
    "o200k_base": _Spec(
        _O200K_PAT_STR,
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        {_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    ),
}

SHIPPED_ENCODINGS: frozenset[str] = frozenset(_SPECS)

_lock = threading.Lock()
_loaded: dict[str, tiktoken.Encoding] = {}


class EncodingIntegrityError(RuntimeError):
    """A shipped rank file does not hash to what tiktoken publishes: the package is damaged."""


def load_shipped_encoding(name: str) -> tiktoken.Encoding:
    """Return the shipped encoding ``name``, building it on first call only.

    Raises ``KeyError`` for a name that is not shipped and ``EncodingIntegrityError`` when the
    file on disk is not the published one (never silently count with a corrupted table).
    """
    encoding = _loaded.get(name)
    if encoding is not None:
        return encoding
    spec = _SPECS[name]
    with _lock:
        encoding = _loaded.get(name)
        if encoding is None:
            encoding = tiktoken.Encoding(
                name=name,
                pat_str=spec.pat_str,
                mergeable_ranks=_read_ranks(name, spec.sha256),
                special_tokens=spec.special_tokens,
            )
            _loaded[name] = encoding
    return encoding


def preload() -> None:
    """Build every shipped encoding now so the first request does not pay for it."""
    for name in _SPECS:
        load_shipped_encoding(name)


def _read_ranks(name: str, expected_sha256: str) -> dict[bytes, int]:
    compressed = resources.files(__name__).joinpath(f"{name}.tiktoken.gz").read_bytes()
    contents = gzip.decompress(compressed)
    actual = hashlib.sha256(contents).hexdigest()
    if actual != expected_sha256:
        raise EncodingIntegrityError(
            f"shipped {name}.tiktoken.gz has sha256 {actual}, expected {expected_sha256}"
        )
    ranks: dict[bytes, int] = {}
    b64decode = base64.b64decode
    for line in contents.splitlines():
        if line:
            token, rank = line.split()
            ranks[b64decode(token)] = int(rank)
    return ranks
