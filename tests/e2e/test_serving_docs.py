"""docs/serving.md's REST examples, run as the page writes them, against a real server.

Every ```bash block of the page with a curl command against localhost:8501 is run with curl,
the port swapped for a test server's, and its answer compared with the ```json or ```text block
the page shows right after it: JSON by shape and keys exactly, numbers by type and range (the
test model is trained a few steps, not by ./run.sh), strings exactly except version numbers;
text line by line with the numbers masked; a last line `HTTP <code>` (curl -w) exactly.
Examples in the page's sections on labels and the token run against a server started with a
model config file (labels stable and canary) and --auth_token_file; the others against the
shared server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass

import pytest
from support.serving_harness import PROJECT_ROOT, ServerProcess, push

PAGE = PROJECT_ROOT / "docs" / "serving.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.M | re.S)
SECTION = re.compile(r"^## (.+)$", re.M)
STATUS_LINE = re.compile(r"HTTP (\d{3})")
NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
# The page's sections whose examples need the server they describe: labels, a token.
SECURED_SECTIONS = ("Version policy and labels", "Security")
TOKEN = "docs-example-token"
CONFIG = """model_config_list {
  config {
    name: "cfpb"
    base_path: "serving_model"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 2 }
  }
}
"""
# What the old README showed for serving_default: one float per example. The model has two
# outputs, so that answer is wrong; the comparison must say so.
OLD_README_ANSWER = '{"predictions":[0.2409577]}'


@dataclass
class Example:
    line: int
    section: str
    command: str
    expected: str

    @property
    def secured(self) -> bool:
        return self.section in SECURED_SECTIONS


def page_examples(text: str) -> list[Example]:
    """The curl examples of the page, each with the output block right after it."""
    blocks = list(FENCE.finditer(text))
    found = []
    for index, block in enumerate(blocks):
        if block[1] != "bash" or "curl " not in block[2] or "localhost:8501" not in block[2]:
            continue
        line = text.count("\n", 0, block.start()) + 1
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        if (
            following is None
            or following[1] not in ("json", "text")
            or text[block.end() : following.start()].strip()
        ):
            raise AssertionError(f"{PAGE}:{line}: a curl example without its output block after it")
        sections = [m[1] for m in SECTION.finditer(text, 0, block.start())]
        found.append(Example(line, sections[-1] if sections else "", block[2], following[2]))
    return found


EXAMPLES = page_examples(PAGE.read_text(encoding="utf-8"))


def split_status(text: str) -> tuple[str, int | None]:
    """(body, HTTP code) of an output whose last line is `HTTP <code>`, else (output, None)."""
    lines = text.strip().splitlines()
    if lines and (match := STATUS_LINE.fullmatch(lines[-1].strip())):
        return "\n".join(lines[:-1]), int(match[1])
    return text.strip(), None


def differences(expected, actual, where: str = "$") -> list[str]:
    """How `actual` differs from the page's `expected` JSON in shape, keys, types and ranges."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: the page shows an object, the server answered {actual!r}"]
        if set(expected) != set(actual):
            return [f"{where}: keys {sorted(actual)}, the page shows {sorted(expected)}"]
        return [
            d for key in expected for d in differences(expected[key], actual[key], f"{where}.{key}")
        ]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: the page shows {len(expected)} item(s), the server {actual!r}"]
        return [
            d
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for d in differences(e, a, f"{where}[{i}]")
        ]
    if isinstance(expected, bool) or expected is None:
        return [] if actual is expected else [f"{where}: {actual!r}, the page shows {expected!r}"]
    if isinstance(expected, (int, float)):
        if type(actual) is not type(expected):
            return [f"{where}: {actual!r}, the page shows a {type(expected).__name__}"]
        if 0 <= expected <= 1 and not 0 <= actual <= 1:
            return [f"{where}: {actual!r} is outside [0, 1], the page shows {expected!r}"]
        return []
    if isinstance(expected, str) and expected.isdigit():  # a model version
        ok = isinstance(actual, str) and actual.isdigit()
        return [] if ok else [f"{where}: {actual!r}, the page shows a version number"]
    return [] if actual == expected else [f"{where}: {actual!r}, the page shows {expected!r}"]


def mismatch(expected: str, actual: str) -> list[str]:
    """Why the server's output does not match the page's output block ([] if it does)."""
    expected_body, expected_code = split_status(expected)
    actual_body, actual_code = split_status(actual)
    problems = []
    if expected_code != actual_code:
        problems.append(f"HTTP code {actual_code}, the page shows {expected_code}")
    try:
        shown = json.loads(expected_body)
    except json.JSONDecodeError:  # text, e.g. Prometheus lines: numbers may differ
        masked = [NUMBER.sub("#", line) for line in expected_body.splitlines()]
        got = [NUMBER.sub("#", line) for line in actual_body.splitlines()]
        return problems + ([] if masked == got else [f"lines {got}, the page shows {masked}"])
    try:
        answer = json.loads(actual_body)
    except json.JSONDecodeError:
        return [*problems, f"the server answered {actual_body[:300]!r}, not JSON"]
    return problems + differences(shown, answer)


@pytest.fixture(scope="module")
def secured_server(saved_model, tmp_path_factory):
    """Versions 1 and 2, labels stable and canary from a model config file, a bearer token."""
    workdir = tmp_path_factory.mktemp("docs_secured")
    for version in (1, 2):
        push(saved_model, workdir / "serving_model", version)
    (workdir / "token.txt").write_text(TOKEN + "\n")
    (workdir / "models.config").write_text(CONFIG)
    server = ServerProcess(
        workdir / "serving_model",
        workdir,
        f"--auth_token_file={workdir / 'token.txt'}",
        f"--model_config_file={workdir / 'models.config'}",
    ).start()
    yield server
    server.stop()


def run_example(example: Example, server: ServerProcess) -> str:
    command = example.command.replace("localhost:8501", f"127.0.0.1:{server.rest_port}")
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
        env={**os.environ, "TOKEN": TOKEN if example.secured else ""},
    )
    assert result.returncode == 0, (
        f"{PAGE}:{example.line}: exit {result.returncode}: {result.stderr}"
    )
    return result.stdout


def test_the_page_shows_both_signatures_and_every_secured_section():
    assert len(EXAMPLES) >= 10, [e.line for e in EXAMPLES]
    predicts = [e for e in EXAMPLES if ":predict" in e.command]
    assert any('"signature_name": "dispute_probability"' in e.command for e in predicts)
    assert any("signature_name" not in e.command and "predictions" in e.expected for e in predicts)
    for section in SECURED_SECTIONS:
        assert any(e.section == section for e in EXAMPLES), f"no curl example under ## {section}"


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"line{e.line}" for e in EXAMPLES])
def test_the_example_answers_as_the_page_shows(example: Example, request):
    server = request.getfixturevalue("secured_server" if example.secured else "shared_server")
    answer = run_example(example, server)
    assert mismatch(example.expected, answer) == [], f"{PAGE}:{example.line}: {example.command}"


def test_a_plain_float_list_for_serving_default_would_fail(shared_server):
    """The old README's answer, held against what the page's first serving_default example
    gets from the server: the comparison must refuse it."""
    (first, *_) = [
        e for e in EXAMPLES if ":predict" in e.command and "signature_name" not in e.command
    ]
    answer = run_example(first, shared_server)
    assert mismatch(first.expected, answer) == []
    problems = mismatch(OLD_README_ANSWER, answer)
    assert len(problems) == 1, problems
    assert problems[0].startswith("$.predictions[0]: {"), problems
    assert problems[0].endswith("the page shows a float"), problems
