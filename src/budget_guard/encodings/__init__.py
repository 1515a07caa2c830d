"""The BPE tables budget-guard ships, so counting never downloads anything.

tiktoken fetches its rank files from the internet on first use; air-gapped deployments cannot
allow that, and a fetch that hangs would stall whatever waits for it. Every rank file tiktoken maps
a model name to is shipped here gzipped (``p50k_edit`` and ``gpt2`` reuse the ``p50k_base`` and
``r50k_base`` files, as tiktoken itself does) and built into ``tiktoken.Encoding`` objects with the
same regex, special tokens and vocabulary size as ``tiktoken_ext.openai_public``. Each is read,
checked against tiktoken's own sha256 and built at most once per process, on first use (or at
start-up through ``preload``).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
from importlib import resources

import tiktoken

__all__ = [
    "SHIPPED_ENCODINGS",
    "EncodingIntegrityError",
    "load_shipped_encoding",
    "loaded_shipped_encoding",
    "preload",
]

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
_R50K_PAT_STR = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
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
    __slots__ = ("explicit_n_vocab", "pat_str", "sha256", "special_tokens")

    def __init__(
        self,
        pat_str: str,
        sha256: str,
        special_tokens: dict[str, int],
        explicit_n_vocab: int | None = None,
    ) -> None:
        self.pat_str = pat_str
        self.sha256 = sha256
        self.special_tokens = special_tokens
        # tiktoken checks the table against it, so a truncated file cannot pass as whole.
        self.explicit_n_vocab = explicit_n_vocab


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
    "p50k_base": _Spec(
        _R50K_PAT_STR,
        "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
        {_ENDOFTEXT: 50256},
        explicit_n_vocab=50281,
    ),
    "r50k_base": _Spec(
        _R50K_PAT_STR,
        "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
        {_ENDOFTEXT: 50256},
        explicit_n_vocab=50257,
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
                explicit_n_vocab=spec.explicit_n_vocab,
            )
            _loaded[name] = encoding
    return encoding


def loaded_shipped_encoding(name: str) -> tiktoken.Encoding | None:
    """The shipped encoding ``name`` if it is already built, else None: never reads a file, so
    an event loop may call it to decide whether counting can run inline."""
    return _loaded.get(name)


def preload() -> None:
    """Build every shipped encoding now, before any request is served.

    Off the event loop is not enough at run time: tiktoken builds its BPE core holding the GIL
    (o200k_base: 150-300 ms in which no other thread runs), so the only stall-free build is one
    done before serving. All four cost about 0.6 s and 137 MiB per process; the two legacy
    tables are 0.12 s and 30 MiB of that.
    """
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
