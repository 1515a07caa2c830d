"""What a response has produced so far: its generated text, and the usage the upstream reported.

Text is kept per output stream (choice, tool call, content block) so split deltas are joined
before counting; once a lot is buffered it is counted and dropped, which bounds memory on long
answers at the cost of at most a token or two at each fold.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import tiktoken

from budget_guard.counting.encoding_lookup import count_text
from budget_guard.counting.usage import UsageReport

_FOLD_CHARS = 1 << 20
MAX_RESPONSE_ID_CHARS = 256
MAX_ITEM_IDS = 1024
"""Output items remembered per response: more than any real answer makes (past it the rest
are not remembered, which only denies the company its own items later: never a leak)."""


class OutputCollector:
    __slots__ = (
        "_buffered_chars",
        "_encoding",
        "_folded_tokens",
        "_load_encoding",
        "_pieces",
        "ended",
        "item_ids",
        "response_id",
        "usage",
    )

    def __init__(self, load_encoding: Callable[[], tiktoken.Encoding]) -> None:
        self._load_encoding = load_encoding
        self._encoding: tiktoken.Encoding | None = None
        self._pieces: dict[Hashable, list[str]] = {}
        self._buffered_chars = 0
        self._folded_tokens = 0
        self.usage = UsageReport()
        # The stream sent its terminal event ([DONE], response.completed, message_stop): the
        # client has its whole answer now, whether or not the connection closes soon after.
        self.ended = False
        # The id of the object the response created (``chatcmpl-…``, ``resp_…``, ``msg_…``):
        # which company created which upstream object. None when the response names none.
        self.response_id: str | None = None
        # The ids of the items a Responses answer produced (``rs_…``, ``msg_…``, ``fc_…``):
        # a later request may send them back as input, and the upstream looks them up.
        self.item_ids: dict[str, None] = {}

    def note_response_id(self, value: object) -> None:
        """Keep the first id seen, if it is a string of at most ``MAX_RESPONSE_ID_CHARS``."""
        if (
            self.response_id is None
            and isinstance(value, str)
            and 0 < len(value) <= MAX_RESPONSE_ID_CHARS
        ):
            self.response_id = value

    def note_item_id(self, value: object) -> None:
        """Keep an output item's id (in order, once), within ``MAX_ITEM_IDS``."""
        if (
            isinstance(value, str)
            and 0 < len(value) <= MAX_RESPONSE_ID_CHARS
            and len(self.item_ids) < MAX_ITEM_IDS
        ):
            self.item_ids[value] = None

    def add_text(self, key: Hashable, text: object) -> None:
        if not isinstance(text, str) or not text:
            return
        pieces = self._pieces.get(key)
        if pieces is None:
            self._pieces[key] = [text]
        else:
            pieces.append(text)
        self._buffered_chars += len(text)
        if self._buffered_chars > _FOLD_CHARS:
            self._fold()

    def counted_output_tokens(self) -> int:
        self._fold()
        return self._folded_tokens

    def discard_text(self) -> None:
        """Forget the text seen so far, and the items named: the response it came in turned
        out unreadable (cut short, or not JSON after all), so its client could not read them
        either."""
        self.item_ids.clear()
        self._pieces.clear()
        self._buffered_chars = 0
        self._folded_tokens = 0

    def _fold(self) -> None:
        if not self._pieces:
            return
        if self._encoding is None:
            self._encoding = self._load_encoding()
        for pieces in self._pieces.values():
            self._folded_tokens += count_text(self._encoding, "".join(pieces))
        self._pieces.clear()
        self._buffered_chars = 0
