"""What a guarded request's query string may carry (``guard.query``): nothing that chooses a
model, and on a metered route only the parameters the APIs define there."""

from __future__ import annotations

import pytest

from budget_guard.guard.query import MAX_QUERY_FIELDS, QueryRefused, check_query
from budget_guard.guard.routes import FREE, METERED, Route

CHAT = Route("POST", "/v1/chat/completions", METERED)
FILE = Route("GET", "/v1/files/{file_id}/content", FREE, owned=("file_id",))


@pytest.mark.parametrize("query", [b"api-version=2024-10-21", b"beta=true", b"beta"])
def test_a_metered_route_takes_the_parameters_its_apis_define(query: bytes) -> None:
    check_query(query, CHAT)


@pytest.mark.parametrize(
    ("query", "param"),
    [
        (b"model=ft:gpt-4o:acme::x", "model"),
        (b"api-version=1&Model=x", "Model"),
        (b"deployment_id=x", "deployment_id"),
        (b"mo%64el=x", "model"),  # decoded before it is read, as the upstream decodes it
        (b"x=1", "x"),
        (b"stream=false", "stream"),
    ],
)
def test_anything_else_on_a_metered_route_is_refused_by_name(query: bytes, param: str) -> None:
    with pytest.raises(QueryRefused) as refused:
        check_query(query, CHAT)
    assert refused.value.param == param
    assert param in str(refused.value)


def test_other_routes_take_any_parameter_but_a_model() -> None:
    check_query(b"limit=2&after=a%20b", FILE)
    for query in (
        b"model=x",
        b"DEPLOYMENT-ID=x",
        b"limit=1&model=",
        b"model[]=x",  # as PHP, Rack and Express read it
        b"model%00=x",
        b"model+=x",
        b"custom_llm_provider=azure",  # LiteLLM's choice of provider
    ):
        with pytest.raises(QueryRefused):
            check_query(query, FILE)


def test_a_query_of_too_many_parameters_is_refused() -> None:
    with pytest.raises(QueryRefused):
        check_query(b"&".join([b"a=1"] * (MAX_QUERY_FIELDS + 1)), FILE)


@pytest.mark.parametrize("route", [CHAT, FILE])
def test_a_semicolon_is_refused_where_older_parsers_split_on_it(route: Route) -> None:
    with pytest.raises(QueryRefused):
        check_query(b"beta=true;model=x", route)
