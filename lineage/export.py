"""The whole lineage graph as a file: JSON for machines, DOT, SVG or PNG for people.

Written whole or not at all, into an existing folder (a typo must not create /nonexistent).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from cli.atomic import atomic_write
from lineage import queries
from pipeline.metadata.store import LineageError

EXPORT_FORMATS = ("json", "dot", "svg", "png")


def to_dot(graph: dict) -> str:
    """Graphviz DOT: executions as boxes, artifacts as ellipses, events as arrows."""
    lines = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    for e in graph["executions"]:
        label = f"{e['node_id']}\\n#{e['id']} {e['state']}"
        lines.append(
            f'  e{e["id"]} [shape=box, style=filled, fillcolor="#dde8f5", label="{label}"];'
        )
    for a in graph["artifacts"]:
        lines.append(f'  a{a["id"]} [shape=ellipse, label="{a["type"]}\\n#{a["id"]}"];')
    for ev in graph["events"]:
        source, target = (f"a{ev['artifact_id']}", f"e{ev['execution_id']}")
        if ev["direction"] == "output":
            source, target = target, source
        lines.append(f'  {source} -> {target} [label="{ev["key"]}", fontsize=8];')
    return "\n".join(lines + ["}"]) + "\n"


def export(store, args) -> str | dict:
    output = Path(args.output)
    kind = output.suffix.lstrip(".").lower()
    if kind not in EXPORT_FORMATS:
        raise LineageError(f"{output}: the suffix must be one of {', '.join(EXPORT_FORMATS)}")
    if problem := _destination_problem(output):
        raise LineageError(problem)
    if kind in ("svg", "png") and shutil.which("dot") is None:
        raise LineageError(
            f"rendering {kind} needs Graphviz's 'dot' (apt-get install graphviz); "
            "export .dot or .json instead"
        )
    graph = queries.graph(store)
    if not graph["executions"]:
        raise LineageError("the store holds no executions yet: nothing to export")
    if kind == "json":
        content = json.dumps(graph, indent=2).encode()
    elif kind == "dot":
        content = to_dot(graph).encode()
    else:
        rendered = subprocess.run(
            ["dot", f"-T{kind}"], input=to_dot(graph).encode(), capture_output=True
        )
        if rendered.returncode:
            raise LineageError(f"Graphviz's dot could not render {kind}: {rendered.stderr[:200]}")
        content = rendered.stdout
    with atomic_write(output, "wb") as out:  # whole or not at all
        out.write(content)
    counts = {key: len(graph[key]) for key in ("executions", "artifacts", "events")}
    if args.json:
        return {"written": str(output), "format": kind, **counts}
    return (
        f"Wrote {output}: {counts['executions']} executions, {counts['artifacts']} artifacts, "
        f"{counts['events']} events"
    )


def _destination_problem(output: Path) -> str | None:
    """Why -o cannot be written, before anything is computed; folders are never created."""
    if output.is_dir():
        return f"-o {output} is a folder; name the file to write, e.g. -o {output / 'lineage.json'}"
    if not output.parent.is_dir():
        what = "is a file" if output.parent.exists() else "does not exist"
        return f"-o {output}: {output.parent} {what}; write into an existing folder"
    return None
