"""``n`` read from a multipart upload, and what the guard refuses to guess at."""

from __future__ import annotations

import httpx
import pytest

from budget_guard.counting import InvalidRequestBody, TokenCounter


def _form(data: object, *, file: bytes = b"\x89PNG" + bytes(range(256)) * 100) -> tuple[bytes, str]:
    """A body as httpx (and so the OpenAI SDK) writes it."""
    request = httpx.Request(
        "POST", "http://x/v1/images/edits", files={"image": ("a.png", file)}, data=data
    )
    return request.read(), request.headers["content-type"]


@pytest.mark.parametrize(("data", "outputs"), [({"n": "10"}, 10), ({"prompt": "a cat"}, 1)])
async def test_n_is_read_from_an_upload(
    counter: TokenCounter, data: dict[str, str], outputs: int
) -> None:
    body, content_type = _form(data)
    assert (await counter.acount_other(body, content_type)).choices == outputs


async def test_a_large_upload_is_read_off_the_loop(counter: TokenCounter) -> None:
    body, content_type = _form({"n": "4"}, file=b"\x00" * 2_000_000)
    assert (await counter.acount_other(body, content_type)).choices == 4


@pytest.mark.parametrize(
    "data",
    [
        {"n": "ten"},
        {"n": "-1"},
        {"n": " 2"},
        {"n": "1" * 40},
        {"n": ["1", "10"]},  # which one counts is the upstream's guess
    ],
)
async def test_an_n_the_guard_cannot_read_is_refused(counter: TokenCounter, data: object) -> None:
    body, content_type = _form(data)
    with pytest.raises(InvalidRequestBody) as raised:
        await counter.acount_other(body, content_type)
    assert raised.value.param == "n"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'--b\r\nContent-Disposition: form-data; name="n"\r\n\r\n10\r\n--b', "boundary=b"),
        (b"not multipart at all", "boundary=b"),
        (b'--b\r\nContent-Disposition: form-data; name="n"\r\n\r\n3\r\n--b--\r\n', ""),
        (
            b"--b\r\nContent-Disposition: form-data; name=\"x\"; name*=utf-8''n\r\n\r\n9\r\n"
            b"--b--\r\n",
            "boundary=b",
        ),
    ],
)
async def test_a_body_that_is_not_whole_multipart_is_refused(
    counter: TokenCounter, body: bytes, content_type: str
) -> None:
    with pytest.raises(InvalidRequestBody):
        await counter.acount_other(body, f"multipart/form-data; {content_type}".rstrip("; "))
