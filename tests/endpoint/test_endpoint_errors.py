"""Every row of the contract's error table, over real HTTP, in the negotiated format."""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx
import pytest
from endpoint_support import (
    ADMIN_KEY,
    COMPANY_A,
    COMPANY_B,
    JSON_TYPE,
    JSV_TYPE,
    PATH,
    USER_A_KEY,
    USER_B_KEY,
    Serve,
    assert_error,
    bearer,
    decode,
    response_status,
    usage,
)
from tests.proxy.servers import refused_url

from budget_guard.auth import CallableAuthenticator, Identity
from budget_guard.budget.window import Window
from budget_guard.endpoint import EndpointSettings
from budget_guard.stores import MemoryStore, RedisStore
from budget_guard.wire import INT64_MAX

SMALL_CAP = 1024


class TestUnauthorized:
    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Bearer not-a-key"},
            {"Authorization": f"Basic {USER_A_KEY}"},
            {"Authorization": f"Bearer {USER_A_KEY} extra"},
            {"X-Api-Key": "not-a-key"},
        ],
    )
    def test_401_not_authenticated(self, serve_endpoint: Serve, headers: dict[str, str]) -> None:
        url = serve_endpoint()
        for response in (
            httpx.post(url + PATH, json={"tokensUsed": 1}, headers=headers),
            httpx.get(url + PATH, headers=headers),
        ):
            body = assert_error(response, 401, "Unauthorized")
            assert body["message"] == "Not Authenticated"
            assert response.headers["www-authenticate"] == "Bearer"
        assert usage(httpx.get(url + PATH, headers=bearer()))["tokensUsed"] == 0

    def test_401_in_jsv(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint()
        response = httpx.post(url + PATH + ".jsv", json={"tokensUsed": 1})
        assert response.status_code == 401
        assert response.headers["content-type"] == JSV_TYPE
        assert response.text == (
            "{responseStatus:{errorCode:Unauthorized,message:Not Authenticated,errors:[]}}"
        )

    def test_x_api_key_authenticates_too(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint()
        response = httpx.post(url + PATH, json={"tokensUsed": 1}, headers={"X-Api-Key": USER_A_KEY})
        assert usage(response)["tokensUsed"] == 1

    def test_an_unauthenticated_body_is_not_parsed(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint()
        response = httpx.post(
            url + PATH, content=b"{not json", headers={"Content-Type": "text/xml"}
        )
        assert_error(response, 401, "Unauthorized")


class TestForbidden:
    def test_403_for_another_company(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint()
        response = httpx.post(
            url + PATH, json={"companyId": str(COMPANY_B), "tokensUsed": 5}, headers=bearer()
        )
        assert_error(response, 403, "Forbidden")
        response = httpx.get(url + PATH, params={"companyId": COMPANY_B.hex}, headers=bearer())
        assert_error(response, 403, "Forbidden")
        assert usage(httpx.get(url + PATH, headers=bearer(USER_B_KEY)))["tokensUsed"] == 0

    def test_admin_without_company_id_is_400_naming_company_id(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint()
        response = httpx.post(url + PATH, json={"tokensUsed": 5}, headers=bearer(ADMIN_KEY))
        assert_error(response, 400, "NotEmpty", "CompanyId")
        assert_error(httpx.get(url + PATH, headers=bearer(ADMIN_KEY)), 400, "NotEmpty", "CompanyId")


class TestValidation:
    @pytest.mark.parametrize(
        ("body", "code", "field"),
        [
            ({}, "NotEmpty", "TokensUsed"),
            ({"tokensUsed": None}, "NotEmpty", "TokensUsed"),
            ({"tokensUsed": ""}, "NotEmpty", "TokensUsed"),
            ({"tokensUsed": -1}, "GreaterThanOrEqual", "TokensUsed"),
            ({"tokensUsed": 1.5}, "SerializationException", "TokensUsed"),
            ({"tokensUsed": "12a"}, "SerializationException", "TokensUsed"),
            ({"tokensUsed": True}, "SerializationException", "TokensUsed"),
            ({"tokensUsed": INT64_MAX + 1}, "SerializationException", "TokensUsed"),
            ({"tokensUsed": [1]}, "SerializationException", "TokensUsed"),
            ({"tokensUsed": 1, "companyId": "acme"}, "SerializationException", "CompanyId"),
            ({"tokensUsed": 1, "companyId": 42}, "SerializationException", "CompanyId"),
        ],
    )
    def test_json_body_fields(
        self, serve_endpoint: Serve, body: dict[str, object], code: str, field: str
    ) -> None:
        url = serve_endpoint()
        assert_error(httpx.post(url + PATH, json=body, headers=bearer()), 400, code, field)

    @pytest.mark.parametrize(
        ("query", "code", "field"),
        [
            ("TokensUsed=-5", "GreaterThanOrEqual", "TokensUsed"),
            ("TokensUsed=ten", "SerializationException", "TokensUsed"),
            ("TokensUsed=9223372036854775808", "SerializationException", "TokensUsed"),
            ("TokensUsed=1&CompanyId=not-a-guid", "SerializationException", "CompanyId"),
        ],
    )
    def test_query_fields(self, serve_endpoint: Serve, query: str, code: str, field: str) -> None:
        url = serve_endpoint()
        response = httpx.post(f"{url}{PATH}?{query}", headers=bearer())
        assert_error(response, 400, code, field)

    def test_jsv_body_fields_in_jsv(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint()
        response = httpx.post(
            url + PATH, content=b"{TokensUsed:-3}", headers=bearer(**{"Content-Type": "text/jsv"})
        )
        assert response.status_code == 400
        assert response.headers["content-type"] == JSV_TYPE
        status = decode(response)["responseStatus"]
        assert status["errorCode"] == "GreaterThanOrEqual"
        assert status["errors"][0]["fieldName"] == "TokensUsed"

    @pytest.mark.parametrize(
        ("content", "content_type"),
        [
            (b"{tokensUsed: 1", "application/json"),
            (b"[1, 2]", "application/json"),
            (b"\xff\xfe", "application/json"),
            (b"{tokensUsed:1", "text/jsv"),
            (b"{a:[}", "text/jsv"),
            (b"tokensUsed", "text/jsv"),
        ],
    )
    def test_body_that_does_not_parse(
        self, serve_endpoint: Serve, content: bytes, content_type: str
    ) -> None:
        url = serve_endpoint()
        response = httpx.post(
            url + PATH, content=content, headers=bearer(**{"Content-Type": content_type})
        )
        assert response.status_code == 400
        status = response_status(response)
        assert status["errorCode"] == "SerializationException"

    @pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "image/png"])
    def test_415_unsupported_media_type(self, serve_endpoint: Serve, content_type: str) -> None:
        url = serve_endpoint()
        response = httpx.post(
            url + PATH, content=b"tokensUsed=1", headers=bearer(**{"Content-Type": content_type})
        )
        assert_error(response, 415, "UnsupportedMediaType")
        assert response.headers["content-type"] == JSON_TYPE

    @pytest.mark.parametrize("key", ["", '""', "x" * 256, "caf\u00e9"])
    def test_malformed_idempotency_key(self, serve_endpoint: Serve, key: str) -> None:
        url = serve_endpoint()
        response = httpx.post(
            url + PATH,
            json={"tokensUsed": 1},
            headers=[*bearer().items(), ("Idempotency-Key", key.encode("latin-1"))],  # type: ignore[list-item]
        )
        assert_error(response, 400, "BadRequest")

    def test_repeated_idempotency_key_header(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint()
        headers = [*bearer().items(), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
        response = httpx.post(url + PATH, json={"tokensUsed": 1}, headers=headers)
        assert_error(response, 400, "BadRequest")
        assert usage(httpx.get(url + PATH, headers=bearer()))["tokensUsed"] == 0


class TestMethodNotAllowed:
    @pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
    def test_405_with_allow(self, serve_endpoint: Serve, method: str) -> None:
        url = serve_endpoint()
        for path in (PATH, PATH + ".jsv"):
            response = httpx.request(method, url + path, headers=bearer())
            assert_error(response, 405, "MethodNotAllowed")
            assert response.headers["allow"] == "GET, HEAD, POST"
        # Even unauthenticated: the route does not exist for that method at all.
        assert httpx.request(method, url + PATH).status_code == 405

    def test_405_on_the_openapi_document(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint()
        response = httpx.post(url + PATH + "/openapi.json", json={})
        assert_error(response, 405, "MethodNotAllowed")
        assert response.headers["allow"] == "GET, HEAD"


class TestBodyTooLarge:
    def test_413_when_content_length_is_over_the_cap(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint(settings=EndpointSettings(max_body_bytes=SMALL_CAP))
        body = b'{"tokensUsed":1' + b" " * SMALL_CAP + b"}"
        response = httpx.post(url + PATH, content=body, headers=bearer(Accept="text/jsv"))
        assert response.status_code == 413
        assert response.headers["content-type"] == JSV_TYPE
        assert decode(response)["responseStatus"]["errorCode"] == "RequestEntityTooLarge"
        assert usage(httpx.get(url + PATH, headers=bearer()))["tokensUsed"] == 0

    def test_a_body_exactly_at_the_cap_is_read(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint(settings=EndpointSettings(max_body_bytes=SMALL_CAP))
        body = b'{"tokensUsed":1' + b" " * (SMALL_CAP - 16) + b"}"
        assert len(body) == SMALL_CAP
        assert usage(httpx.post(url + PATH, content=body, headers=bearer()))["tokensUsed"] == 1

    def test_413_at_once_for_a_declared_length_without_reading_it(
        self, serve_endpoint: Serve
    ) -> None:
        url = serve_endpoint(settings=EndpointSettings(max_body_bytes=SMALL_CAP))
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {USER_A_KEY}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
        )
        answer, _ = _raw_exchange(url, head.encode(), [])
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert b'"errorCode":"RequestEntityTooLarge"' in answer

    def test_413_as_soon_as_a_chunked_body_grows_over_the_cap(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint(settings=EndpointSettings(max_body_bytes=SMALL_CAP))
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {USER_A_KEY}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"100\r\n" + b" " * 256 + b"\r\n"
        # Five 256-byte chunks pass the 1 KiB cap; the body is never terminated, so the
        # answer can only come from a server that stopped reading on its own.
        first = b"100\r\n" + b"{" + b" " * 255 + b"\r\n"
        answer, closed = _raw_exchange(url, head.encode(), [first] + [chunk] * 4)
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert closed, "a streamed body over the cap must not be read any further"
        assert b'"errorCode":"RequestEntityTooLarge"' in answer
        assert usage(httpx.get(url + PATH, headers=bearer()))["tokensUsed"] == 0


def _raw_exchange(url: str, head: bytes, chunks: list[bytes]) -> tuple[bytes, bool]:
    """Send a request's head and some body chunks, never finishing the body; return the
    response the server sends anyway, and whether it then closed the connection."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head)
        for chunk in chunks:
            sock.sendall(chunk)
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(65536)
        headers, _, body = received.partition(b"\r\n\r\n")
        length = int(
            next(
                line.split(b":", 1)[1]
                for line in headers.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
        )
        while len(body) < length:
            body += sock.recv(65536)
        closed = False
        if b"connection: close" in headers.lower():
            closed = sock.recv(65536) == b""
        return headers + b"\r\n\r\n" + body, closed


class TestStoreFailures:
    def test_503_when_redis_is_unreachable(self, install_endpoint: Serve) -> None:
        port = urlsplit(refused_url()).port
        store = RedisStore.from_url(
            f"redis://127.0.0.1:{port}/0", Window(30), socket_timeout=0.5, connect_timeout=0.5
        )
        url = install_endpoint(store=store)
        for response in (
            httpx.post(url + PATH, json={"tokensUsed": 1}, headers=bearer()),
            httpx.get(url + PATH, headers=bearer(Accept="text/jsv")),
        ):
            assert response.status_code == 503
            status = response_status(response)
            assert status["errorCode"] == "ServiceUnavailable"
            assert "127.0.0.1" not in response.text and str(port) not in response.text
            assert response.headers["retry-after"] == "1"

    def test_503_when_the_memory_store_is_full_and_nothing_is_recorded(
        self, install_endpoint: Serve
    ) -> None:
        url = install_endpoint(store=MemoryStore(Window(30), max_companies=1))
        assert usage(httpx.post(url + PATH, json={"tokensUsed": 4}, headers=bearer()))
        response = httpx.post(url + PATH, json={"tokensUsed": 6}, headers=bearer(USER_B_KEY))
        assert_error(response, 503, "ServiceUnavailable")
        assert usage(httpx.get(url + PATH, headers=bearer()))["tokensUsed"] == 4

    def test_usage_beyond_int64_is_400_naming_tokens_used(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint()
        full = httpx.post(url + PATH, json={"tokensUsed": INT64_MAX}, headers=bearer())
        assert usage(full)["tokensUsed"] == INT64_MAX
        response = httpx.post(url + PATH, json={"tokensUsed": 1}, headers=bearer())
        assert_error(response, 400, "OverflowException", "TokensUsed")
        assert usage(httpx.get(url + PATH, headers=bearer()))["tokensUsed"] == INT64_MAX


class TestUnexpectedErrors:
    def test_a_bug_is_a_500_with_no_detail_and_a_log_without_secrets(
        self, install_endpoint: Serve, caplog: pytest.LogCaptureFixture
    ) -> None:
        async def broken(headers: Mapping[str, str]) -> Identity | None:
            raise RuntimeError(f"session lookup failed for {headers.get('authorization')}")

        url = install_endpoint(
            store=MemoryStore(Window(30)), authenticator=CallableAuthenticator(broken)
        )
        with caplog.at_level(logging.DEBUG):
            response = httpx.post(
                url + PATH + "?format=jsv",
                json={"tokensUsed": 1},
                headers=bearer(**{"Idempotency-Key": "retry-key-123"}),
            )
        assert response.status_code == 500
        assert response.headers["content-type"] == JSV_TYPE
        assert response.text == (
            "{responseStatus:{errorCode:InternalServerError,message:Internal Server Error,"
            "errors:[]}}"
        )
        assert "RuntimeError" in caplog.text
        assert "in broken" in caplog.text  # the frames say where
        assert USER_A_KEY not in caplog.text
        assert "retry-key-123" not in caplog.text

    def test_unknown_paths_of_the_bare_app_are_404_dtos(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint(bare=True)
        assert_error(httpx.get(url + "/elsewhere", headers=bearer()), 404, "NotFound")


def test_nothing_secret_is_logged(serve_endpoint: Serve, caplog: pytest.LogCaptureFixture) -> None:
    url = serve_endpoint()
    with caplog.at_level(logging.DEBUG):
        for key in (USER_A_KEY, "wrong-key-456", ADMIN_KEY):
            for headers in (bearer(key), {"X-Api-Key": key}):
                httpx.post(
                    url + PATH,
                    json={"tokensUsed": 1, "companyId": str(COMPANY_A)},
                    headers={**headers, "Idempotency-Key": f"idem-{key}"},
                )
                httpx.post(
                    url + PATH,
                    json={"tokensUsed": 2},
                    headers={**headers, "Idempotency-Key": f"idem-{key}"},
                )
    for secret in (USER_A_KEY, "wrong-key-456", ADMIN_KEY, "idem-"):
        assert secret not in caplog.text
