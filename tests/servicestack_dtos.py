"""The request and response DTOs that ServiceStack's "Add ServiceStack Reference" generates for
Python from the service description in the seeds: snake_case fields, camelCase on the wire,
Guids as str. Kept as the generator writes them (``typing.Optional``, evaluated annotations):
the client's reflection only unwraps ``typing.Optional``."""

# ruff: noqa: UP045

from dataclasses import dataclass
from typing import Optional

from dataclasses_json import LetterCase, Undefined, dataclass_json
from servicestack import IReturn, ResponseStatus


@dataclass_json(letter_case=LetterCase.CAMEL, undefined=Undefined.EXCLUDE)
@dataclass
class AiChatUsageResponse:
    company_id: Optional[str] = None
    tokens_used: int = 0
    token_limit: int = 0
    tokens_remaining: int = 0
    is_within_budget: bool = False
    window_days: int = 0
    response_status: Optional[ResponseStatus] = None


# @Route("/assistant/ai-chat/usage", "POST")
@dataclass_json(letter_case=LetterCase.CAMEL, undefined=Undefined.EXCLUDE)
@dataclass
class RecordAiChatUsage(IReturn[AiChatUsageResponse]):
    company_id: Optional[str] = None
    tokens_used: int = 0
