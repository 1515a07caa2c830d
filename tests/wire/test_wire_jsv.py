"""The JSV codec: ServiceStack's quoting rules, whitespace tolerance, round trips, robustness."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from budget_guard.wire import JsvDecodeError, dumps, loads
from budget_guard.wire.jsv import MAX_DEPTH

#: Verbatim copies of the JSV samples in the service description's seeds
#: (shared/seeds/RecordAiChatUsage.fsharp-dtos.txt and .table.txt), kept here so the tests
#: do not depend on anything outside the repository.
DATA = Path(__file__).parent / "data"
SEED_REQUESTS = ("seed_request_pretty.jsv", "seed_request_flat.jsv")


# --------------------------------------------------------------------------- writing


def test_contract_example_is_written_exactly() -> None:
    body = {
        "tokensUsed": 1200,
        "tokenLimit": 50000,
        "tokensRemaining": 48800,
        "isWithinBudget": True,
        "windowDays": 30,
    }
    assert dumps(body) == (
        "{tokensUsed:1200,tokenLimit:50000,tokensRemaining:48800,isWithinBudget:True,windowDays:30}"
    )


@pytest.mark.parametrize("special", ['"', ":", ",", "{", "}", "[", "]", "\r", "\n"])
def test_each_special_character_forces_quotes(special: str) -> None:
    text = f"a{special}b"
    expected = '"' + text.replace('"', '""') + '"'
    assert dumps(text) == expected
    assert dumps({"K": text}) == "{K:" + expected + "}"


def test_inner_quotes_are_doubled() -> None:
    assert dumps('say "hi"') == '"say ""hi"""'
    assert loads('"say ""hi"""') == 'say "hi"'
    assert dumps('"') == '""""'
    assert loads('""""') == '"'


def test_empty_string_is_two_quotes_and_reads_back_empty() -> None:
    assert dumps("") == '""'
    assert dumps({"A": ""}) == '{A:""}'
    assert loads('{A:""}') == {"A": ""}


def test_plain_strings_stay_bare() -> None:
    assert dumps("hello world") == "hello world"
    assert dumps("tab\tinside") == "tab\tinside"
    assert dumps("ünïcødé ✓") == "ünïcødé ✓"


def test_edge_whitespace_is_quoted_so_it_survives_the_trimming_reader() -> None:
    assert dumps(" padded ") == '" padded "'
    assert loads(dumps({"A": " padded "})) == {"A": " padded "}


def test_scalars_are_written_like_dotnet() -> None:
    assert dumps(True) == "True"
    assert dumps(False) == "False"
    assert dumps(-42) == "-42"
    assert dumps(2**63 - 1) == "9223372036854775807"
    assert dumps(1.5) == "1.5"


def test_guid_is_written_in_n_format() -> None:
    guid = UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")
    assert dumps({"CompanyId": guid}) == "{CompanyId:3fa85f6457174562b3fc2c963f66afa6}"


def test_nulls_are_omitted_from_objects() -> None:
    assert dumps({"A": None, "B": 1, "C": None}) == "{B:1}"
    assert dumps(None) == ""


def test_nested_objects_and_lists_have_no_spaces() -> None:
    value = {"Status": {"Errors": [{"Code": "X", "Meta": {"k": "v"}}, {"Code": "Y"}]}, "L": []}
    assert dumps(value) == "{Status:{Errors:[{Code:X,Meta:{k:v}},{Code:Y}]},L:[]}"


def test_unwritable_values_are_refused() -> None:
    with pytest.raises(ValueError):
        dumps([1, None])
    with pytest.raises(ValueError):
        dumps(float("nan"))
    with pytest.raises(TypeError):
        dumps({1: "a"})
    with pytest.raises(TypeError):
        dumps(object())


# --------------------------------------------------------------------------- reading


def _seed_request_bodies() -> list[str]:
    return [(DATA / name).read_text() for name in SEED_REQUESTS]


@pytest.mark.parametrize("body", _seed_request_bodies(), ids=SEED_REQUESTS)
def test_seed_sample_requests_parse(body: str) -> None:
    expected = {"CompanyId": "00000000-0000-0000-0000-000000000000", "TokensUsed": "0"}
    assert loads(body) == expected
    assert loads(body.replace("\n", "\r\n")) == expected


def test_seed_sample_response_with_tabs_and_newlines_parses() -> None:
    response = (DATA / "seed_response_pretty.jsv").read_text()
    assert "\t" in response
    parsed = loads(response)
    assert parsed == {
        "TokensUsed": "0",
        "TokenLimit": "0",
        "TokensRemaining": "0",
        "IsWithinBudget": "False",
        "WindowDays": "0",
        "ResponseStatus": {
            "ErrorCode": "String",
            "Message": "String",
            "StackTrace": "String",
            "Errors": [
                {
                    "ErrorCode": "String",
                    "FieldName": "String",
                    "Message": "String",
                    "Meta": {"String": "String"},
                }
            ],
            "Meta": {"String": "String"},
        },
    }


def test_whitespace_around_every_token_is_tolerated() -> None:
    text = ' \r\n{ \tA :  1 ,\n B\t:\t[ x , "y, z" ] ,C: { D : "" } }\n '
    assert loads(text) == {"A": "1", "B": ["x", "y, z"], "C": {"D": ""}}


def test_quoted_keys_and_values() -> None:
    assert loads('{"a:b":"c,d","":x}') == {"a:b": "c,d", "": "x"}


def test_bare_values_keep_inner_colons_and_spaces() -> None:
    """Like ServiceStack's reader, a bare value runs to the next separator."""
    assert loads("{Url:http://example.com/a b}") == {"Url": "http://example.com/a b"}
    assert loads("{A:1 B:2}") == {"A": "1 B:2"}


def test_empty_bare_value_is_null() -> None:
    assert loads("{A:,B:1}") == {"A": None, "B": "1"}
    assert loads("{A:}") == {"A": None}


def test_empty_and_blank_text_read_as_null() -> None:
    assert loads("") is None
    assert loads(" \n\t") is None


def test_trailing_comma_in_an_object_is_tolerated() -> None:
    assert loads("{A:1,\n}") == {"A": "1"}


def test_repeated_key_keeps_last_value() -> None:
    assert loads("{A:1,A:2}") == {"A": "2"}


@pytest.mark.parametrize(
    "text",
    [
        "{",
        "{A",
        "{A:1",
        '{A:"1" B:2}',
        "{:1}",
        "{A,B:1}",
        "[1,2",
        '["1" 2]',
        "[{A:1} x]",
        '"unterminated',
        '{A:"x"y}',
        "{A:1}}",
        "a,b",
        "{A:1}]",
        "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5),
    ],
)
def test_malformed_text_raises_decode_error(text: str) -> None:
    with pytest.raises(JsvDecodeError):
        loads(text)


def test_decode_error_is_a_value_error_with_a_position() -> None:
    with pytest.raises(ValueError) as raised:
        loads('{A:"x" B:2}')
    assert isinstance(raised.value, JsvDecodeError)
    assert raised.value.position == 7


# --------------------------------------------------------------------------- properties


def _as_read(value: object) -> object:
    """What ``loads`` gives back for ``value``: the same shape with every scalar as text."""
    if isinstance(value, dict):
        return {key: _as_read(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_as_read(item) for item in value]
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, UUID):
        return value.hex
    if isinstance(value, int | float):
        return repr(value)
    return value


_scalars = (
    st.text()
    | st.integers()
    | st.booleans()
    | st.uuids()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(['"', '""', ":", ",", "{}", "[]", "\r\n", " ", "a b", '"q"', "{x:1}"])
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner | st.none(), max_size=5)
    ),
    max_leaves=30,
)


@given(_values)
def test_round_trip_of_random_nested_values(value: object) -> None:
    assert loads(dumps(value)) == _as_read(value)


@given(_values)
def test_written_text_survives_pretty_printing_whitespace(value: object) -> None:
    """Whitespace added after every separator outside quotes does not change what is read."""
    text = dumps(value)
    spaced = _add_whitespace_outside_quotes(text)
    assert loads(spaced) == loads(text)


def _add_whitespace_outside_quotes(text: str) -> str:
    out: list[str] = []
    in_quotes = False
    for char in text:
        if char == '"':
            in_quotes = not in_quotes
        out.append(char)
        if not in_quotes and char in "{[,:":
            out.append("\n\t ")
    return "".join(out)


@given(st.text())
def test_reading_any_text_only_ever_raises_decode_error(text: str) -> None:
    _assert_reads_or_refuses(text)


@given(st.text(alphabet='{}[]:,"ab \n', max_size=60))
def test_reading_structural_noise_only_ever_raises_decode_error(text: str) -> None:
    _assert_reads_or_refuses(text)


def _assert_reads_or_refuses(text: str) -> None:
    try:
        value = loads(text)
    except JsvDecodeError:
        return
    assert value is None or isinstance(value, str | list | dict)
