r"""Upstream objects a request body points at, which must be the calling company's own.

A chat or a response can pull a stored object into its context: ``previous_response_id``
continues another conversation, a ``file_id`` content part reads a file, ``vector_store_ids``
searches a store, an ``item_reference`` replays a stored item, and so does a Responses input
item that carries its ``id`` (the upstream loads a stored reasoning item by it). Under the
operator's one upstream key every company's objects are reachable that way, so the guard
collects every such reference (from the parsed body, so escaped keys such as
``"file_i\u0064"`` are seen as the upstream sees them) and forwards the request only when
each one is an object the company created through the guard (or one of the items a response
it created produced). A fine-tuned model is such an object too: it is trained on one
company's data, and any key of the organisation can use it by name.
"""

from __future__ import annotations

import re
from typing import Any

from budget_guard.counting.errors import InvalidRequestBody
from budget_guard.counting.key_case import NAME_MAPS as _NAME_MAPS
from budget_guard.counting.key_case import OPAQUE, OPAQUE_OBJECTS, fold, may_fold

# Keys whose string value (or list of strings) names an upstream object.
_REFERENCE_KEYS = frozenset(
    {
        "approval_request_id",  # an MCP approval answers a stored request item
        "assistant_id",
        "container",
        "container_id",
        "conversation",
        "conversation_id",
        "file_id",
        "file_ids",
        "input_file_id",
        "previous_response_id",
        "response_id",
        "skill_id",
        "thread_id",
        "training_file",  # a fine-tuning job's
        "validation_file",
        "vector_store_id",
        "vector_store_ids",
    }
)
_BY_FOLD = frozenset(fold(key) for key in _REFERENCE_KEYS)
# One scan of the raw bytes decides whether the body can hold a reference at all, so the
# ordinary chat request pays a compiled scan, not a walk of its parsed JSON. Keys are matched
# as loosely as some upstreams read them (``key_case``: any case, ``_`` and ``-`` ignored), so
# the scan reads the body in lower case without those. A key can hide from it only behind a
# \u escape (JSON has no other escape that yields a letter, "_" or "-") or a character some
# parser folds into a letter, so a body with either is always walked.
_MAYBE = re.compile(
    rb'"(?:approvalrequestid|assistantid|audio|container(?:id)?|conversation(?:id)?|'
    rb"fileids?|inputfileid|previousresponseid|responseid|skillid|threadid|trainingfile|"
    rb'validationfile|vectorstoreids?|itemreference|id)"'
)
# A fine-tuned model, read the same way (with "-" gone, ":ft-" and ".ft-" read ":ft" and
# ".ft").
_FT_MARK = re.compile(rb"ft(?<=[:.]ft)|ft:")  # written so that the scan is for "ft"
_MAYBE_FINE_TUNED = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*?(?:ft:|[:.]ft)')
_FINE_TUNED = re.compile(r"(?<![a-z0-9])ft:|[:.]ft-", re.IGNORECASE)
_SEPARATORS = b"_-"
MAX_REFERENCES = 4096
"""More references than any real request carries (a long agent conversation sent back item
by item holds a few hundred); past it the request is refused, so one request cannot make the
guard look up an unbounded number of objects. They are looked up in one store call."""
# The client's own data, whose keys no API reads as fields (as ``key_case`` skips them), but
# for a prompt template's ``variables``, whose values can be files the upstream reads.
_DATA = OPAQUE - {"variables"}
# The same when an object: a tool call's input or arguments (a Responses ``input`` is a list).
_DATA_OBJECTS = OPAQUE_OBJECTS
# Objects that name an object by their ``id``: an input item replayed by reference, an eval
# run's data source read from a file.
_BY_ID = frozenset({"item_reference", "file_id"})
# Keys whose object names an object by its ``id``: a Chat assistant message's ``audio``, a
# previous audio answer the upstream replays.
_ID_HOLDERS = frozenset({"audio"})
# Top-level lists of items the upstream may look up by their ``id``.
_ITEM_LISTS = frozenset({"input", "items"})


class TooManyReferences(InvalidRequestBody):
    def __init__(self) -> None:
        super().__init__(f"The request refers to more than {MAX_REFERENCES} stored objects.", None)


def is_fine_tuned_model(name: str) -> bool:
    """Whether ``name`` is a fine-tuned model's: OpenAI's ``ft:<base>:<org>:<suffix>:<id>``
    (a checkpoint's adds ``:ckpt-step-<n>``) and legacy ``<base>:ft-<org>-<date>``, Azure's
    ``<base>.ft-<id>``. Also behind a router's provider prefix or in a list of models
    (LiteLLM sends ``openai/ft:...`` on as ``ft:...``, and calls each of ``a,ft:...``) and in
    any case: a name read too loosely is refused, never another company's model served."""
    return _FINE_TUNED.search(name) is not None


def may_refer(body: bytes) -> bool:
    """Whether ``body`` can name an object at all (if not, there is nothing to walk)."""
    if body.find(b"\\u") >= 0 or (not body.isascii() and may_fold(body)):
        return True
    lowered = body.lower().translate(None, _SEPARATORS)
    if _MAYBE.search(lowered) is not None:
        return True
    return _may_name_fine_tuned(lowered)


def _may_name_fine_tuned(lowered: bytes) -> bool:
    """Whether a ``"model"`` of the lowered body may be fine-tuned: looked for only when
    the body holds an ``ft:``, ``:ft`` or ``.ft`` at all (a scan for the literal "ft", which
    most bodies do not hold)."""
    return _FT_MARK.search(lowered) is not None and _MAYBE_FINE_TUNED.search(lowered) is not None


def object_references(data: object) -> tuple[str, ...]:
    """The object ids a parsed body refers to, in order, without repeats. Keys are matched
    as loosely as some upstream reads them: an id it may read is checked however it is
    named. What is the client's own data (``metadata``, a tool call's ``input``, a schema's
    ``default``...) names no object: no upstream looks ids up there, and a company's
    ``{"metadata": {"conversation_id": "ticket-7"}}`` is not another company's object."""
    found: dict[str, None] = {}
    stack: list[tuple[Any, bool]] = [(data, False)]
    top = True
    while stack:  # iterative: no input reaches a RecursionError
        value, names = stack.pop()
        if isinstance(value, dict):
            reference_item = False
            for key, item in value.items():
                if names:  # the client's own names (a schema's properties): never a field
                    if isinstance(item, dict | list):
                        stack.append((item, False))
                    continue
                if key in _DATA or key.startswith("x-"):
                    continue
                if key in _REFERENCE_KEYS:
                    _collect(item, found)
                    name = key
                else:
                    name = fold(key)
                    if name in _BY_FOLD:
                        _collect(item, found)
                if name == "type" and type(item) is str and item in _BY_ID:
                    reference_item = True
                elif name == "model" and type(item) is str and is_fine_tuned_model(item):
                    found[item] = None
                elif name in _ID_HOLDERS and isinstance(item, dict):
                    _collect_ids(item, found)
                elif top and name in _ITEM_LISTS and isinstance(item, list):
                    _collect_item_ids(item, found)
                if isinstance(item, dict):
                    if key not in _DATA_OBJECTS:
                        stack.append((item, key in _NAME_MAPS))
                elif isinstance(item, list):
                    stack.append((item, False))
            if reference_item:
                _collect_ids(value, found)
        elif isinstance(value, list):
            stack.extend((item, False) for item in value if isinstance(item, dict | list))
        top = False
        if len(found) > MAX_REFERENCES:
            raise TooManyReferences
    return tuple(found)


def _collect_item_ids(items: list[Any], found: dict[str, None]) -> None:
    """A Responses ``input`` item (or a conversation's ``items``) carrying an ``id`` is
    looked up by it: the upstream loads a stored reasoning item, or refuses one it never
    stored. So an echoed item's id names an object like ``item_reference`` does."""
    for item in items:
        if isinstance(item, dict):
            _collect_ids(item, found)


def _collect(value: object, found: dict[str, None]) -> None:
    if isinstance(value, str):
        if value:
            found[value] = None
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str) and item:
                found[item] = None
    elif isinstance(value, dict):  # {"conversation": {"id": "conv_..."}}
        _collect_ids(value, found)


def _collect_ids(value: dict[str, Any], found: dict[str, None]) -> None:
    for key, ident in value.items():
        if isinstance(ident, str) and ident and (key == "id" or fold(key) == "id"):
            found[ident] = None
