"""A non-streamed JSON response, metered as it passes in bounded memory.

The body is walked (``json_walker``) along the paths ``response_paths`` names, and what is
found goes straight to the collector, which counts text in folds: nothing here grows with the
body. What is held, per response: the ``usage`` object (at most ``MAX_USAGE_CHARS``), an
Anthropic tool's input (up to ``MAX_TOOL_INPUT_CHARS``, to count it as compact JSON; past that
it is counted as sent), the top-level ``id``, and text waiting for its object's ``type`` (at
most ``MAX_PENDING_CHARS``, past which the rest is not counted: the upstream's usage
stands, when it reports one). A body that does not end as a whole JSON document is charged as
if it said nothing (its usage, if a whole one had passed, still counts): its client could not
read it either.

Most answers are small, though, and walking one byte by byte costs far more than parsing it:
a body is held while it is at most ``WHOLE_BODY_BYTES`` and, if it ends there, read with one
``orjson.loads`` by ``whole_body``, which finds exactly what the walker would. A body past
that size, or one orjson refuses (not strict JSON, not UTF-8, cut short, trailing bytes), is
walked as before, so the bound and the lenient reading are unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable

import orjson

from budget_guard.counting.json_walker import SKIP, JsonWalker, PathKey, ShortValue, Sink
from budget_guard.counting.output_collector import OutputCollector
from budget_guard.counting.output_shapes import note_annotation
from budget_guard.counting.response_paths import (
    TOOL_INPUT,
    USAGE,
    Gate,
    container_action,
    is_type_field,
    text_rule,
)
from budget_guard.counting.whole_body import collect_whole_body

logger = logging.getLogger(__name__)

MAX_USAGE_CHARS = 64 * 1024
MAX_TOOL_INPUT_CHARS = 1 << 20
MAX_PENDING_CHARS = 1 << 20
_MAX_TYPE_CHARS = 64
_MAX_ID_CHARS = 256
WHOLE_BODY_BYTES = MAX_USAGE_CHARS
"""A body up to this size is parsed whole. No larger: a usage object in a body this size is
never over ``MAX_USAGE_CHARS`` (a character is at least a byte), so it is read as the walker
reads it."""


class JsonBody:
    """Feeds a JSON body's bytes, split anywhere, to the collector; a ``json_walker.Router``."""

    __slots__ = (
        "_annotations",
        "_collector",
        "_held",
        "_held_bytes",
        "_pending",
        "_pending_chars",
        "_types",
        "_walker",
        "_whole_body_bytes",
    )

    def __init__(
        self, collector: OutputCollector, *, whole_body_bytes: int = WHOLE_BODY_BYTES
    ) -> None:
        self._collector = collector
        self._whole_body_bytes = min(whole_body_bytes, WHOLE_BODY_BYTES)
        # The chunks of a body still small enough to be parsed whole; None once walking.
        self._held: list[bytes] | None = []
        self._held_bytes = 0
        self._walker: JsonWalker | None = None  # made only for a body that is walked
        self._types: dict[PathKey, str] = {}  # gates whose type is known
        # A citation's fields, until it closes and its type says whether it names a file the
        # answer made (at most the three short fields of each citation open at once).
        self._annotations: dict[PathKey, dict[str, str]] = {}
        # Text waiting for a gate's type: (key, the gates still to pass, text).
        self._pending: dict[PathKey, list[tuple[Hashable, tuple[Gate, ...], str]]] = {}
        self._pending_chars = 0

    def feed(self, chunk: bytes) -> None:
        held = self._held
        if held is not None:
            self._held_bytes += len(chunk)
            if self._held_bytes <= self._whole_body_bytes:
                held.append(chunk)
                return
            self._held = None
            walker = self._start_walking()
            for piece in held:
                walker.feed(piece)
        else:
            walker = self._walker or self._start_walking()
        walker.feed(chunk)

    def close(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            raw = held[0] if len(held) == 1 else b"".join(held)
            try:
                document = orjson.loads(raw)
            except orjson.JSONDecodeError:
                self._start_walking().feed(raw)  # the walker decides what can still be read
            else:
                collect_whole_body(self._collector, document)
                return
        walker = self._walker or self._start_walking()
        walker.close()
        if not walker.complete:
            self._collector.discard_text()

    def _start_walking(self) -> JsonWalker:
        walker = self._walker = JsonWalker(self)
        return walker

    # The router the walker asks.

    def container(self, path: PathKey, is_object: bool) -> str | Sink:
        action = container_action(path)
        if action == USAGE:
            return ShortValue(MAX_USAGE_CHARS, self._usage) if is_object else SKIP
        if action == TOOL_INPUT:
            rule = text_rule(path)
            return SKIP if rule is None else _ToolInput(self, *rule)
        return action  # WALK or SKIP

    def string(self, path: PathKey) -> Sink | None:
        if path == ("id",):
            return ShortValue(_MAX_ID_CHARS, self._collector.note_response_id)
        if _names_an_item(path):
            return ShortValue(_MAX_ID_CHARS, self._collector.note_item_id)
        if _is_annotation(path[:-1]) and path[-1] in _ANNOTATION_FIELDS:
            annotation = self._annotations.setdefault(path[:-1], {})
            return ShortValue(_MAX_ID_CHARS, lambda value: _keep(annotation, path[-1], value))
        if is_type_field(path):
            return ShortValue(_MAX_TYPE_CHARS, lambda kind: self._typed(path[:-1], kind))
        rule = text_rule(path)
        return None if rule is None else _Text(self, *rule)

    def closed(self, path: PathKey) -> None:
        annotation = self._annotations.pop(path, None)
        if annotation is not None:
            note_annotation(self._collector, annotation)
        self._types.pop(path, None)
        dropped = self._pending.pop(path, None)
        if dropped:
            self._pending_chars -= sum(len(text) for _, _, text in dropped)

    # What the sinks report.

    def emit(self, key: Hashable, gates: tuple[Gate, ...], text: str) -> None:
        """Count ``text`` under ``key`` once every gate's type allows it."""
        for position, (gate, allowed) in enumerate(gates):
            kind = self._types.get(gate)
            if kind is None:
                self._hold(gate, key, gates[position:], text)
                return
            if kind not in allowed:
                return
        self._collector.add_text(key, text)

    def _hold(self, gate: PathKey, key: Hashable, gates: tuple[Gate, ...], text: str) -> None:
        if self._pending_chars + len(text) > MAX_PENDING_CHARS:
            logger.info("text before its object's type passed %d characters", MAX_PENDING_CHARS)
            return
        self._pending_chars += len(text)
        self._pending.setdefault(gate, []).append((key, gates, text))

    def _typed(self, gate: PathKey, kind: str | None) -> None:
        if kind is None or gate in self._types:
            return  # an overlong type matches no rule; a repeated one does not change it
        self._types[gate] = kind
        waiting = self._pending.pop(gate, None)
        if waiting:
            self._pending_chars -= sum(len(text) for _, _, text in waiting)
            for key, gates, text in waiting:
                self.emit(key, gates, text)

    def _usage(self, raw: str | None) -> None:
        if raw is None:
            logger.info("a usage object over %d characters was not read", MAX_USAGE_CHARS)
            return
        try:
            usage = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        if isinstance(usage, dict):
            self._collector.usage.merge(usage, final=True)


_ANNOTATION_FIELDS = frozenset({"type", "file_id", "container_id"})


def _is_annotation(path: PathKey) -> bool:
    match path:
        case ("output", int(), "content", int(), "annotations", int()):
            return True
    return False


def _keep(annotation: dict[str, str], field: str, value: str | None) -> None:
    if value is not None:
        annotation[field] = value


def _names_an_item(path: PathKey) -> bool:
    """An output item's id or its code interpreter's container, a Chat audio answer's id, an
    Anthropic answer's code-execution container."""
    match path:
        case ("output", int(), "id" | "container_id"):
            return True
        case ("choices", int(), "message", "audio", "id") | ("container", "id"):
            return True
    return False


class _Text:
    """A string of generated text: each piece is counted as it arrives."""

    __slots__ = ("_body", "_gates", "_key")

    def __init__(self, body: JsonBody, key: Hashable, gates: tuple[Gate, ...]) -> None:
        self._body, self._key, self._gates = body, key, gates

    def write(self, text: str) -> None:
        self._body.emit(self._key, self._gates, text)

    def close(self) -> None:
        pass


class _ToolInput:
    """An Anthropic tool's input object, counted as the compact JSON the API's own count uses.

    Past ``MAX_TOOL_INPUT_CHARS`` it is counted as it was sent instead of being held."""

    __slots__ = ("_body", "_gates", "_key", "_pieces", "_size")

    def __init__(self, body: JsonBody, key: Hashable, gates: tuple[Gate, ...]) -> None:
        self._body, self._key, self._gates = body, key, gates
        self._pieces: list[str] | None = []
        self._size = 0

    def write(self, text: str) -> None:
        pieces = self._pieces
        if pieces is None:
            self._body.emit(self._key, self._gates, text)
            return
        pieces.append(text)
        self._size += len(text)
        if self._size > MAX_TOOL_INPUT_CHARS:
            self._pieces = None
            self._body.emit(self._key, self._gates, "".join(pieces))

    def close(self) -> None:
        pieces = self._pieces
        if pieces is None:
            return
        try:
            value = orjson.loads("".join(pieces))
        except orjson.JSONDecodeError:
            return
        if value != {}:
            self._body.emit(self._key, self._gates, orjson.dumps(value).decode())
