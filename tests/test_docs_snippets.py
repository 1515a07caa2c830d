"""Every ```python, ```toml and ```sh snippet in README.md and docs/ runs as written, so none
can rot: Python snippets run in a fresh interpreter, TOML snippets pass every check ``serve``
runs, shell snippets run in bash. Fences in any other language are refused (use ```text).

The snippets talk to a real ``budget-guard serve --demo`` (the quick start's server): the
test rewrites ``127.0.0.1:8080`` to its port, ``BUDGET_GUARD_KEY`` is its demo key, and the
store URL is the test Redis. The environment holds the variables the example configs say to
export. A few commands are proved elsewhere and are stubbed here, each saying so: installing
(`pip`, `apt-get`, `python -m venv`: CI installs in a fresh virtualenv) and the test suite
itself (`python -m pytest`: CI runs exactly that line). ``budget-guard serve`` in a snippet
really starts, on a free port, and is stopped once its banner is out.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from budget_guard.checked_config import check_config
from budget_guard.config import settings_from_mapping
from tests.cli.processes import clean_environment, serving

ROOT = Path(__file__).parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = {"python", "toml", "sh", "text"}
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)
DEMO_KEY = "bg-demo-docs-snippets-0001"
ENVIRONMENT = {
    # What examples/*.toml and the README tell a reader to export.
    "OPENAI_API_KEY": "sk-docs-test-upstream",
    "ANTHROPIC_API_KEY": "sk-ant-docs-test-upstream",
    "ACME_KEY": "bg-acme-docs-test-1",
    "ADMIN_KEY": "bg-admin-docs-test-1",
    "SERVICE_KEY": "bg-service-docs-test-1",
    "JWT_SECRET": "docs-test-jwt-secret-0123456789abcdef",
    "BUDGET_GUARD_WEBHOOK_SECRET": "docs-test-webhook-secret",
}


@dataclass(frozen=True)
class Snippet:
    document: Path
    line: int
    language: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}:{self.language}"


def snippets() -> list[Snippet]:
    found = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(Snippet(document, line, match.group(1).strip(), match.group(2)))
    return found


ALL = snippets()
RUNNABLE = [s for s in ALL if s.language in {"python", "toml", "sh"}]


def test_every_fence_names_a_known_language() -> None:
    unknown = [s.id for s in ALL if s.language not in LANGUAGES]
    assert not unknown, f"use ```text for anything that is not run: {unknown}"


def test_the_readme_keeps_the_quick_start_and_the_ci_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert (
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/budget-guard serve --demo"
        in readme
    )
    assert 'python -m pip install -e ".[test]" && python -m pytest' in readme


SHIM = """#!/bin/bash
# {why}
{body}
"""

SERVE_SHIM = r"""#!/bin/bash
# budget-guard; "serve" starts for real on a free port and stops once its banner is out.
if [ "$1" != serve ]; then exec "$BG_PYTHON" -m budget_guard.cli "$@"; fi
log=$(mktemp)
setsid "$BG_PYTHON" -m budget_guard.cli "$@" --port 0 >"$log" 2>&1 &
pid=$!
for _ in $(seq 600); do
  if grep -q "listening on" "$log"; then
    sleep 0.3; cat "$log"; kill -TERM -- -"$pid"; wait "$pid"; exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then cat "$log"; wait "$pid"; exit $?; fi
  sleep 0.05
done
cat "$log"; kill -KILL -- -"$pid"; exit 1
"""


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Path]:
    """A working directory as a reader has it: the examples, the files the docs name, and
    the commands on PATH (installers stubbed, budget-guard real)."""
    home = tmp_path_factory.mktemp("docs-reader")
    (home / "examples").symlink_to(ROOT / "examples")
    for snippet in ALL:
        first = snippet.text.splitlines()[0] if snippet.text else ""
        named = re.fullmatch(r"# ([\w.-]+\.toml)", first)
        if snippet.language == "toml" and named:
            (home / named.group(1)).write_text(snippet.text)
    shims = home / "shims"
    shims.mkdir()
    venv = home / ".venv" / "bin"
    venv.mkdir(parents=True)
    _script(shims / "budget-guard", SERVE_SHIM)
    _script(venv / "budget-guard", SERVE_SHIM)
    installed = "installing is proved by CI, which installs in a fresh virtualenv"
    _script(venv / "pip", SHIM.format(why=installed, body='echo "(pip $*: stubbed)"'))
    _script(shims / "apt-get", SHIM.format(why=installed, body='echo "(apt-get $*: stubbed)"'))
    python = SHIM.format(
        why="python, with the installers and the test suite stubbed (CI runs them verbatim)",
        body='case "$1 $2" in\n'
        '  "-m venv") mkdir -p "$3/bin"; echo "(venv: stubbed)";;\n'
        '  "-m pip"|"-m pytest") echo "($*: stubbed)";;\n'
        '  *) exec "$BG_PYTHON" "$@";;\nesac',
    )
    _script(shims / "python", python)
    _script(shims / "python3", python)
    yield home


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture(scope="module")
def environment(sandbox: Path, redis_url: str) -> Iterator[dict[str, str]]:
    """The reader's environment, with the quick start's demo server running."""
    env = clean_environment()
    env.update(ENVIRONMENT)
    env["BUDGET_GUARD_DEMO_KEY"] = DEMO_KEY
    with serving("--demo", env=env) as demo:
        env.update(
            BUDGET_GUARD_KEY=DEMO_KEY,
            BUDGET_GUARD_STORE_URL=redis_url,
            BG_PYTHON=sys.executable,
            BG_DEMO_ADDRESS=f"127.0.0.1:{demo.port}",
            PATH=f"{sandbox / 'shims'}{os.pathsep}{env.get('PATH', '')}",
            PYTHONPATH=os.pathsep.join(
                [str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")]
            ).rstrip(os.pathsep),
        )
        env.pop("BUDGET_GUARD_DEMO_KEY")
        yield env


def _as_run(text: str, env: dict[str, str], redis_url: str) -> str:
    return text.replace("127.0.0.1:8080", env["BG_DEMO_ADDRESS"]).replace(
        "redis://127.0.0.1:6379/0", redis_url
    )


@pytest.mark.parametrize("snippet", RUNNABLE, ids=[s.id for s in RUNNABLE])
def test_snippet_runs_as_written(
    snippet: Snippet,
    sandbox: Path,
    environment: dict[str, str],
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = _as_run(snippet.text, environment, redis_url)
    if snippet.language == "toml":
        import tomllib

        for name, value in ENVIRONMENT.items():
            monkeypatch.setenv(name, value)
        check_config(settings_from_mapping(tomllib.loads(text), source=str(sandbox / "x.toml")))
        return
    command = (
        [sys.executable, "-c", text]
        if snippet.language == "python"
        else ["bash", "-eo", "pipefail", "-c", text]
    )
    done = subprocess.run(
        command, cwd=sandbox, env=environment, capture_output=True, text=True, timeout=120
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{snippet.id} failed:\n{output}"
    assert "Traceback" not in output, output
    assert '"error"' not in output and "responseStatus" not in output, output


LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(document: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", document.read_text(encoding="utf-8"), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


@pytest.mark.parametrize("document", DOCUMENTS, ids=[str(d.relative_to(ROOT)) for d in DOCUMENTS])
def test_every_local_link_and_anchor_exists(document: Path) -> None:
    for target in LINK.findall(document.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        assert linked.exists(), f"{document.name}: {target} does not exist"
        if anchor:
            assert anchor in _anchors(linked), f"{document.name}: no #{anchor} in {path}"
