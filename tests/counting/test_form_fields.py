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


MULTIPART = "multipart/form-data; boundary=B"


def _part(disposition: bytes, value: bytes) -> bytes:
    return b"--B\r\nContent-Disposition: " + disposition + b"\r\n\r\n" + value + b"\r\n"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        # Starlette decodes field names with the request's charset: "+AG4-" is n in UTF-7.
        (_part(b'form-data; name="+AG4-"', b"99") + b"--B--\r\n", MULTIPART + "; charset=utf-7"),
        (b"%6E=99", "application/x-www-form-urlencoded; charset=utf-16"),
        # Go's parser reads the escape away: name="\n" is n there.
        (_part(b'form-data; name="\\n"', b"99") + b"--B--\r\n", MULTIPART),
        # Two dispositions in one part: Starlette reads the last, Go the first.
        (
            b'--B\r\nContent-Disposition: form-data; name="n"\r\n'
            b'Content-Disposition: form-data; name="x"\r\n\r\n99\r\n--B--\r\n',
            MULTIPART,
        ),
        (b"n=1&%6E=99", "application/x-www-form-urlencoded"),
    ],
)
async def test_a_form_an_upstream_could_read_another_n_from_is_refused(
    counter: TokenCounter, body: bytes, content_type: str
) -> None:
    """Red-team findings: each of these is an n of 99 to some upstream's form parser."""
    with pytest.raises(InvalidRequestBody):
        await counter.acount_other(body, content_type)


@pytest.mark.parametrize(
    ("body", "outputs"),
    [(b"n=10&prompt=a+cat", 10), (b"%6E=5", 5), (b"prompt=a+cat", 1)],
)
async def test_n_is_read_from_a_url_encoded_form(
    counter: TokenCounter, body: bytes, outputs: int
) -> None:
    """Starlette (and so FastAPI's ``Form()``) reads these as forms too."""
    request = await counter.acount_other(body, "application/x-www-form-urlencoded")
    assert request.choices == outputs


async def test_a_form_of_a_million_empty_parts_is_refused_at_the_field_bound(
    counter: TokenCounter,
) -> None:
    """It would hold a counting thread for seconds; Starlette stops at 1,000 fields too."""
    body = b"--B\r\n\r\n\r\n" * 1_000_000 + b"--B--\r\n"
    with pytest.raises(InvalidRequestBody):
        await counter.acount_other(body, MULTIPART)


async def test_a_windows_file_name_is_not_an_escaped_field_name(counter: TokenCounter) -> None:
    body = (
        _part(b'form-data; name="image"; filename="C:\\\\cat.png"', b"\x89PNG")
        + _part(b'form-data; name="n"', b"2")
        + b"--B--\r\n"
    )
    assert (await counter.acount_other(body, MULTIPART)).choices == 2


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"prompt=a+cat&N=10", "application/x-www-form-urlencoded"),
        (b"prompt=a+cat&_n=10", "application/x-www-form-urlencoded"),
        (_part(b'form-data; name="N"', b"10") + b"--B--\r\n", MULTIPART),
    ],
)
async def test_a_field_some_server_reads_as_n_is_refused(
    counter: TokenCounter, body: bytes, content_type: str
) -> None:
    """Go's gorilla/schema and Fiber, and ASP.NET, bind form fields ignoring case (a
    red-team finding): ``N`` is ten images there."""
    with pytest.raises(InvalidRequestBody) as raised:
        await counter.acount_other(body, content_type)
    assert "Write it as 'n'" in raised.value.message


FINE_TUNED = "ft:gpt-4o-mini-2024-07-18:acme::9zFkq3Ja"


@pytest.mark.parametrize("urlencoded", [False, True])
async def test_a_fine_tuned_model_in_a_form_is_an_object(
    counter: TokenCounter, urlencoded: bool
) -> None:
    data = {"model": FINE_TUNED, "n": "2"}
    if urlencoded:
        request = httpx.Request("POST", "http://x/v1/moderations", data=data)
        body, content_type = request.read(), request.headers["content-type"]
    else:
        body, content_type = _form(data)
    read = await counter.acount_other(body, content_type)
    assert (read.references, read.choices) == ((FINE_TUNED,), 2)
    base, base_type = _form({"model": "gpt-image-1"})
    assert (await counter.acount_other(base, base_type)).references == ()


@pytest.mark.parametrize("data", [{"model": ["a", FINE_TUNED]}, {"model": "m" * 300}])
async def test_a_model_the_guard_cannot_read_is_refused(
    counter: TokenCounter, data: object
) -> None:
    for body, content_type in (
        _form(data),
        (httpx.Request("POST", "http://x", data=data).read(), "application/x-www-form-urlencoded"),
    ):
        with pytest.raises(InvalidRequestBody) as raised:
            await counter.acount_other(body, content_type)
        assert raised.value.param == "model"
