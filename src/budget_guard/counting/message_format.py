"""OpenAI's per-message token overhead, from its cookbook "How to count tokens with tiktoken".

Every message is wrapped as ``<|start|>{role/name}\\n{content}<|end|>\\n``: 3 tokens plus the
role's, 1 more when a ``name`` is given, and every reply is primed with
``<|start|>assistant<|message|>``: 3 tokens. The Responses API and the Anthropic estimate reuse the
same framing.
"""

from __future__ import annotations

import tiktoken

from budget_guard.counting.encoding_lookup import count_text

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3


def message_framing(encoding: tiktoken.Encoding, role: str | None, name: str | None) -> int:
    total = TOKENS_PER_MESSAGE
    if role:
        total += count_text(encoding, role)
    if name is not None:
        total += count_text(encoding, name) + TOKENS_PER_NAME
    return total
