"""The shipped encodings are tiktoken's own, load without any network, and refuse damage."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import tiktoken
import tiktoken_ext.openai_public as openai_public

from budget_guard.counting.encoding_lookup import count_text, get_encoding
from budget_guard.encodings import SHIPPED_ENCODINGS, load_shipped_encoding
from tests.counting.test_openai_cookbook import EXAMPLE_MESSAGES

SAMPLES = [
    "tiktoken is great!",
    "antidisestablishmentarianism",
    "2 + 2 = 4",
    "お誕生日おめでとう",
    "def f(x):\n\treturn x  # <|endoftext|> stays text\r\n",
]

# No network, an empty tiktoken cache: the import must still count gpt-4o and gpt-4 messages.
_OFFLINE_SCRIPT = textwrap.dedent(
    """
    import json, socket, sys

    def refuse(*args, **kwargs):
        raise OSError("network is disabled in this test")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse

    import budget_guard
    from budget_guard.counting import TokenCounter

    messages = json.load(sys.stdin)
    counter = TokenCounter()
    counts = {
        model: counter.count_request(
            "/v1/chat/completions", json.dumps({"model": model, "messages": messages}).encode()
        ).input_tokens
        for model in ("gpt-4o", "gpt-4")
    }
    print(json.dumps(counts))
    """
)


@pytest.mark.parametrize("name", sorted(SHIPPED_ENCODINGS))
def test_shipped_encoding_equals_tiktoken_constructor(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same ranks file (by tiktoken's hash), regex and special tokens as tiktoken_ext."""
    shipped = load_shipped_encoding(name)
    requested: list[tuple[str, str | None]] = []

    def serve_shipped_ranks(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        requested.append((url, expected_hash))
        return shipped._mergeable_ranks

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", serve_shipped_ranks)
    reference = tiktoken.Encoding(**openai_public.ENCODING_CONSTRUCTORS[name]())

    assert requested == [
        (f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken", _hash(name))
    ]
    assert shipped._pat_str == reference._pat_str
    assert shipped._special_tokens == reference._special_tokens
    assert shipped.n_vocab == reference.n_vocab
    for text in SAMPLES:
        assert shipped.encode_ordinary(text) == reference.encode_ordinary(text)


@pytest.mark.parametrize(("alias", "shipped"), [("p50k_edit", "p50k_base")])
def test_an_alias_is_built_by_tiktoken_from_the_same_shipped_file(
    alias: str, shipped: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tiktoken builds p50k_edit from p50k_base's file (only its special tokens differ, and
    counting treats special-token strings as text), so that shipped table counts it exactly."""
    requested: list[tuple[str, str | None]] = []
    ranks = load_shipped_encoding(shipped)._mergeable_ranks

    def serve_shipped_ranks(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        requested.append((url, expected_hash))
        return ranks

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", serve_shipped_ranks)
    reference = tiktoken.Encoding(**openai_public.ENCODING_CONSTRUCTORS[alias]())
    served = get_encoding(alias)
    assert requested == [
        (f"https://openaipublic.blob.core.windows.net/encodings/{shipped}.tiktoken", _hash(shipped))
    ]
    assert served._pat_str == reference._pat_str
    for text in SAMPLES:
        assert count_text(served, text) == len(reference.encode_ordinary(text))


@pytest.mark.parametrize("name", sorted(SHIPPED_ENCODINGS))
def test_counting_agrees_with_encode_ordinary(name: str) -> None:
    """count_text reads tiktoken's buffer instead of a list; the number must not change."""
    encoding = load_shipped_encoding(name)
    for text in [*SAMPLES, "", "\ud800 lone surrogate", "お誕生日" * 1000]:
        assert count_text(encoding, text) == len(encoding.encode_ordinary(text))


def test_cookbook_token_ids() -> None:
    """Token ids the cookbook prints for its comparison strings."""
    cl100k = load_shipped_encoding("cl100k_base")
    o200k = load_shipped_encoding("o200k_base")
    assert cl100k.encode("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    assert cl100k.encode("お誕生日おめでとう") == [
        33334, 45918, 243, 21990, 9080, 33334, 62004, 16556, 78699
    ]  # fmt: skip
    assert o200k.encode("お誕生日おめでとう") == [8930, 9697, 243, 128225, 8930, 17693, 4344, 48669]


def test_each_encoding_is_built_once() -> None:
    assert load_shipped_encoding("o200k_base") is load_shipped_encoding("o200k_base")


def test_counts_with_no_network_and_an_empty_tiktoken_cache(tmp_path: Path) -> None:
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(cache)}
    env.pop("DATA_GYM_CACHE_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT],
        env=env,
        input=json.dumps(EXAMPLE_MESSAGES),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # The prompt_tokens OpenAI's API reported for this conversation (see test_openai_cookbook).
    assert json.loads(done.stdout) == {"gpt-4o": 124, "gpt-4": 129}
    assert list(cache.iterdir()) == []


def test_a_damaged_shipped_file_is_refused(tmp_path: Path) -> None:
    shipped = Path(__file__).parents[2] / "src/budget_guard/encodings/cl100k_base.tiktoken.gz"
    damaged = gzip.decompress(shipped.read_bytes()).replace(b"IQ== 0", b"IQ== 7", 1)
    (tmp_path / "cl100k_base.tiktoken.gz").write_bytes(gzip.compress(damaged))
    script = textwrap.dedent(
        f"""
        import pathlib, types
        import budget_guard.encodings as encodings
        encodings.resources = types.SimpleNamespace(files=lambda _: pathlib.Path({str(tmp_path)!r}))
        try:
            encodings.load_shipped_encoding("cl100k_base")
        except encodings.EncodingIntegrityError as exc:
            print("refused:", exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.startswith("refused: shipped cl100k_base.tiktoken.gz has sha256"), (
        done.stderr
    )


def _hash(name: str) -> str:
    return {
        "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "p50k_base": "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
        "r50k_base": "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
    }[name]


# Counts every legacy model in a fresh process (nothing preloaded), as the middleware does, from
# the event loop, and reports how long it took.
_HANGING_PROXY_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, time
    from budget_guard.counting import TokenCounter

    async def main():
        counter = TokenCounter()
        started = time.perf_counter()
        counts = {}
        for model in ("text-davinci-003", "davinci", "gpt2", "code-davinci-edit-001"):
            body = json.dumps({"model": model, "prompt": "hello world"}).encode()
            counted = await counter.acount_request("/v1/completions", body)
            counts[model] = counted.input_tokens
        print(json.dumps({"counts": counts, "seconds": time.perf_counter() - started}))

    asyncio.run(main())
    """
)


@contextmanager
def hanging_proxy() -> Iterator[tuple[str, list[socket.socket]]]:
    """A proxy that accepts connections and never answers: what a blackholed egress does."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


def test_legacy_models_count_within_a_second_behind_a_hanging_proxy(tmp_path: Path) -> None:
    """text-davinci-003 once made tiktoken download p50k_base; through an egress that hangs,
    the whole server stopped answering. Every legacy table is shipped now."""
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    with hanging_proxy() as (proxy, accepted):
        env = {
            **os.environ,
            "TIKTOKEN_CACHE_DIR": str(cache),
            "HTTPS_PROXY": proxy,
            "HTTP_PROXY": proxy,
            "https_proxy": proxy,
            "http_proxy": proxy,
        }
        env.pop("DATA_GYM_CACHE_DIR", None)
        env.pop("NO_PROXY", None)
        env.pop("no_proxy", None)
        done = subprocess.run(
            [sys.executable, "-c", _HANGING_PROXY_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert accepted == []  # nothing even tried to reach the network
    report = json.loads(done.stdout)
    # "hello world" is 2 tokens in GPT-2's vocabulary and both of its descendants.
    assert report["counts"] == dict.fromkeys(
        ("text-davinci-003", "davinci", "gpt2", "code-davinci-edit-001"), 2
    )
    assert report["seconds"] < 1.0, report
    assert list(cache.iterdir()) == []
