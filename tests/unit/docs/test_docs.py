"""The README and docs/ tell the truth: the generated configuration page matches the code, every
page is reachable from the README, links resolve, and every command shown answers --help.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipeline.config import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
DOCS = sorted((PROJECT_ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
SHELL_BLOCK = re.compile(r"^```(?:bash|shell|sh|console)\n(.*?)^```", re.MULTILINE | re.DOTALL)
# Programs the pages may show that are not the project's: shown, not run.
OTHER_PROGRAMS = {
    "curl", "sqlite3", "docker", "export", "cd", "git", "apt-get", "sudo", "pip", "uv",
    "kill", "wrk", "grpcurl", "gsutil", "mysql", "mariadb", "psql", "ls", "cat", "open",
    "xdg-open", "chromium", "unset", "mkdir", "cp", "jq",
}  # fmt: skip
# What user docs leave out: counts of tests, CI minutes, the issues work came from.
NOT_FOR_USERS = (
    re.compile(r"\bissues? #?\d+", re.IGNORECASE),
    re.compile(r"\b\d[\d,]* tests\b"),
    re.compile(r"\bCI\b[^.\n]*\bmin(ute)?s?\b"),
)


def shell_commands(page: Path) -> list[list[str]]:
    """The commands of a page's shell blocks, continuation lines and multi-line quotes joined,
    comments dropped."""
    commands = []
    for block in SHELL_BLOCK.findall(page.read_text()):
        pending = ""  # a quoted argument may span lines (a JSON body)
        for line in block.replace("\\\n", " ").splitlines():
            line = pending + line.strip()
            if line.startswith("$ "):
                line = line[2:]
            try:
                words = shlex.split(line, comments=True) if line else []
            except ValueError:  # no closing quotation yet
                pending = line + "\n"
                continue
            pending = ""
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                words = words[1:]  # VARIABLE=value before the program
            if words:
                commands.append(words)
        assert not pending, f"{page.name}: a shell block ends inside a quote: {pending[:80]}"
    return commands


def help_command(words: list[str]) -> list[str] | None:
    """How to ask the project's program of a command for --help; None for other programs."""
    python = [sys.executable]
    program = words[0]
    if program in (".venv/bin/python", "python", "python3"):
        if words[1] == "-m":
            return [*python, "-m", words[2], "--help"]
        return [*python, words[1], "--help"]
    if program in ("./run.sh", "scripts/serve.sh") or program.startswith("scripts/airflow"):
        return [program, "--help"]
    if program in OTHER_PROGRAMS or program.startswith(("./test.sh", ".venv/bin/jupyter")):
        return None
    if program in ("scripts/ensure_env.sh", "scripts/ensure_test_services.sh"):
        return None  # installers: running them is what CI does
    raise AssertionError(f"a command the docs test does not know how to check: {shlex.join(words)}")


def test_the_configuration_page_is_generated_from_the_code():
    result = subprocess.run(
        [sys.executable, "scripts/config_reference.py", "--check"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr


def test_the_readme_is_a_front_door_to_every_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)\)", text))
    assert {f"docs/{page.name}" for page in DOCS} <= linked


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (page.parent / target).exists(), f"{page.name}: {target} does not exist"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_user_docs_hold_no_test_counts_ci_minutes_or_issue_numbers(page):
    # The prose, not the code and output it quotes (a monitor report may list "issue 1").
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    for pattern in NOT_FOR_USERS:
        assert not pattern.search(text), f"{page.name}: {pattern.search(text).group(0)!r}"


def test_every_command_the_pages_show_answers_help(tmp_path):
    wanted = {}
    for page in PAGES:
        for words in shell_commands(page):
            command = help_command(words)
            if command is not None:
                wanted.setdefault(tuple(command), page.name)
    assert len(wanted) >= 10  # the pages show the project's commands

    def ask(command: tuple[str, ...]) -> tuple[tuple[str, ...], subprocess.CompletedProcess]:
        env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow_home")}
        result = subprocess.run(
            list(command), cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        return command, result

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(ask, wanted))
    failed = [
        f"{wanted[command]}: {shlex.join(command)} exited {result.returncode}: "
        f"{result.stderr.strip().splitlines()[-1:] or ''}"
        for command, result in answers
        if result.returncode != 0 or "usage" not in result.stdout.lower()
    ]
    assert failed == []
