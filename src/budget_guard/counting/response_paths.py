"""Where each supported API puts generated text in a whole (non-streamed) response, by path.

A body is read as it passes (see ``json_walker``), so these rules name *paths*, never parsed
objects: ``choices`` (Chat, Completions), ``output`` (Responses API), ``content`` blocks of a
``"type": "message"`` (Anthropic). Whatever no rule names, an embeddings ``data`` array
included, is skipped without being held.

Some text counts only for a given ``type`` of the object around it (a Responses item, an
Anthropic block, the Anthropic message itself), and JSON does not promise ``type`` comes
first: a rule therefore names the *gates* its text must pass, each an object's path and the
types it may have, and the reader holds text back until each gate's type is known.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Final

from budget_guard.counting.json_walker import SKIP, WALK, PathKey

Gate = tuple[PathKey, frozenset[str]]

USAGE: Final = "usage"
TOOL_INPUT: Final = "tool_input"

_MESSAGE_FIELDS = frozenset(("refusal", "reasoning_content", "reasoning"))
_CALLS = frozenset(("function_call", "custom_tool_call"))
_TOOL_BLOCKS = frozenset(("tool_use", "server_tool_use"))
_IS_MESSAGE = frozenset(("message",))
_ANTHROPIC: Final[Gate] = ((), _IS_MESSAGE)


def container_action(path: PathKey) -> str:
    """``WALK`` into a container that may hold text, ``USAGE``/``TOOL_INPUT`` to capture it."""
    match path:
        case ():
            return WALK
        case ("usage",):
            return USAGE
        case ("container",):  # an Anthropic answer's, for its id
            return WALK
        case ("choices" | "output" | "content",):
            return WALK
        case ("choices", int()) | ("choices", int(), "message"):
            return WALK
        case ("choices", int(), "message", "content" | "tool_calls" | "function_call" | "audio"):
            return WALK
        case ("choices", int(), "message", "content" | "tool_calls", int()):
            return WALK
        case ("choices", int(), "message", "tool_calls", int(), "function" | "custom"):
            return WALK
        case ("output", int()) | ("output", int(), "content" | "summary"):
            return WALK
        case ("output", int(), "content" | "summary", int()):
            return WALK
        case ("output", int(), "content", int(), "annotations"):
            return WALK
        case ("output", int(), "content", int(), "annotations", int()):
            return WALK
        case ("content", int()):
            return WALK
        case ("content", int(), "input"):
            return TOOL_INPUT
    return SKIP


def is_type_field(path: PathKey) -> bool:
    """A ``type`` some rule's gate waits for: the body's own, an output item's, a block's."""
    match path:
        case ("type",) | ("output" | "content", int(), "type"):
            return True
    return False


def text_rule(path: PathKey) -> tuple[Hashable, tuple[Gate, ...]] | None:
    """The collector key a string at ``path`` is counted under, and the gates it must pass.

    Keys match the stream events' keys for the same output, so each piece of text is counted
    once, joined with the pieces that belong to it. Gates are listed innermost first: an
    object's type is forgotten when the object ends, and by then its text has passed its gate
    (or been dropped) and waits only on the objects around it. (A call carrying both
    ``arguments`` and ``input`` would have both counted; no API sends both.)
    """
    match path:
        case ("choices", int() as index, "text"):
            return (index, "text"), ()
        case ("choices", int() as index, "message", "content"):
            return (index, "content"), ()
        case ("choices", int() as index, "message", "content", int() as part, "text"):
            return (index, "part", part), ()
        case ("choices", int() as index, "message", str() as field) if field in _MESSAGE_FIELDS:
            return (index, field), ()
        case ("choices", int() as index, "message", "tool_calls", int() as call, _, "name"):
            return (index, "tool", call, "name"), ()
        case ("choices", int() as index, "message", "tool_calls", int() as call, _, str() as arg):
            return ((index, "tool", call, "arguments"), ()) if _is_arguments(arg) else None
        case ("choices", int() as index, "message", "function_call", "name"):
            return (index, "function_call", "name"), ()
        case ("choices", int() as index, "message", "function_call", str() as arg):
            return ((index, "function_call", "arguments"), ()) if _is_arguments(arg) else None
        case ("output", int() as index, "content", int() as part, "text" | "refusal"):
            return ("out", index, part), ((("output", index), _IS_MESSAGE),)
        case ("output", int() as index, "name"):
            return ("out", index, "name"), ((("output", index), _CALLS),)
        case ("output", int() as index, "arguments" | "input"):
            return ("out", index, "arguments"), ((("output", index), _CALLS),)
        case ("output", int() as index, "summary", int() as part, "text"):
            return ("sum", index, part), ((("output", index), frozenset(("reasoning",))),)
        case ("content", int() as index, "text" | "thinking" as field):
            return ("blk", index), ((("content", index), frozenset((field,))), _ANTHROPIC)
        case ("content", int() as index, "name"):
            return ("blk", index, "name"), ((("content", index), _TOOL_BLOCKS), _ANTHROPIC)
        case ("content", int() as index, "input"):  # a tool's input, captured as compact JSON
            return ("blk", index), ((("content", index), _TOOL_BLOCKS), _ANTHROPIC)
    return None


def _is_arguments(field: str) -> bool:
    return field in ("arguments", "input")
