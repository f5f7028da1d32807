"""Write docs/configuration.md from the code: every runner flag (PipelineConfig), the Airflow
settings that mirror them, and the model server's flags (its parser), with defaults and ranges.

    .venv/bin/python scripts/config_reference.py            # rewrite the page
    .venv/bin/python scripts/config_reference.py --check    # exit 1 if the page is out of date

tests/unit/docs/test_docs.py runs the check, so the page and the code cannot disagree.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from cli.bounds import Range  # noqa: E402
from pipeline.config import PipelineConfig, flag_name  # noqa: E402
from runners.airflow_settings import SETTING_PREFIX, TRAINING_DAG_NUMBERS  # noqa: E402

PAGE = PROJECT_ROOT / "docs" / "configuration.md"
INTRO = """# Configuration reference

Every setting, generated from the code by `scripts/config_reference.py` (do not edit by hand: a unit
test fails when this page and the code disagree). Numbers outside their allowed range (and nan or
infinity) are refused in one line before anything runs.
"""


def cell(text: object) -> str:
    """A table cell: argparse's %% escape undone, pipes escaped."""
    return str(text).replace("%%", "%").replace("|", "\\|").replace("\n", " ")


def allowed(bounds: Range | None, choices=None) -> str:
    if choices:
        return "one of " + ", ".join(f"`{c}`" for c in choices)
    return bounds.describe() if bounds else ""


def shown_default(value: object) -> str:
    if isinstance(value, bool):
        return "off" if value is False else "on"
    if value in ("", ()):
        return ""
    text = str(value)
    return f"`{text.replace(str(PROJECT_ROOT) + '/', '')}`"


def runner_rows() -> list[str]:
    rows = []
    defaults = PipelineConfig()
    for field in dataclasses.fields(PipelineConfig):
        beam_args = field.name == "extra_beam_args"  # a list: a flag only, not an Airflow setting
        flag = "--beam-arg" if beam_args else flag_name(field.name)
        setting = "" if beam_args else f"`{SETTING_PREFIX}{field.name.upper()}`"
        default = getattr(defaults, field.name)
        bounds, choices = field.metadata.get("bounds"), field.metadata.get("choices")
        rows.append(
            f"| `{flag}` | {setting} | {shown_default(default)} | "
            f"{cell(allowed(bounds, choices))} | {cell(field.metadata['help'])} |"
        )
    return rows


def server_rows() -> list[str]:
    from serving.__main__ import make_parser

    rows = []
    for action in make_parser()._actions:
        if not action.option_strings or action.dest == "help":
            continue
        bounds = getattr(action.type, "__self__", None)
        rows.append(
            f"| `{action.option_strings[0]}` | {shown_default(action.default)} | "
            f"{cell(allowed(bounds, action.choices))} | {cell(action.help)} |"
        )
    return rows


def page() -> str:
    lines = [INTRO]
    lines += [
        "## The runners",
        "",
        "`runners/beam_runner.py`, `runners/local_runner.py` (`./run.sh`) and "
        "`runners/kubeflow_runner.py` take these flags; the Airflow DAG files read the same "
        "settings from environment variables or Airflow Variables of the second column's name. "
        "They are the fields of `PipelineConfig` (`pipeline/config.py`).",
        "",
        "| flag | Airflow setting | default | allowed | meaning |",
        "| --- | --- | --- | --- | --- |",
        *runner_rows(),
        "",
        "The MLMD password comes from `$MLMD_MYSQL_PASSWORD`, never from a flag.",
        "",
        "## The continuous-training DAG's own settings",
        "",
        "| setting | default | allowed |",
        "| --- | --- | --- |",
        *(
            f"| `{SETTING_PREFIX}{name.upper()}` | {default} | {cell(bounds.describe())} |"
            for name, (default, bounds) in TRAINING_DAG_NUMBERS.items()
        ),
        "",
        "## The model server",
        "",
        "`python -m serving` (`scripts/serve.sh`). Flag names are TF Serving's; each is also "
        "accepted with dashes (`--model-name`).",
        "",
        "| flag | default | allowed | meaning |",
        "| --- | --- | --- | --- |",
        *server_rows(),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is out of date")
    args = parser.parse_args(argv)
    wanted = page()
    if args.check:
        if not PAGE.is_file() or PAGE.read_text() != wanted:
            print(f"{PAGE} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    PAGE.parent.mkdir(exist_ok=True)
    PAGE.write_text(wanted)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
