"""The interactive notebook, executed top to bottom by a real Jupyter kernel on a small sample,
then exported to HTML and opened offline in headless Chromium, as a person would see it."""

from __future__ import annotations

import math
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from lineage.notebook import slice_view, stats_view
from models import features
from pipeline.config import MIN_SLICE_EXAMPLES, PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "notebooks" / "interactive_pipeline.ipynb"
SAMPLE_ROWS = 2000  # test split ~300: several product slices have 20+
STATISTICS_SECTION = "## ExampleGen and StatisticsGen"
EVALUATOR_SECTION = "## Evaluator"
SCHEMA_GEN_SECTION = "## SchemaGen"
FAIRNESS_SECTION = "## Fairness"
# Lines the notebook used to bury its outputs in (issue 16); none may reach a stream output.
NOISE = (
    "tensorflow_decision_forests is not available",
    "Assets written to",
    "Interactive Beam",
    "python-snappy",
    "is deprecated",
    "Epoch 1/",
    "INFO:",
    "invalid value encountered",
)
# Marks the browser's layout on the page: rendered height of each statistics table, decoded
# width of each image. Chromium runs it when the page loads; --dump-dom shows the result.
LAYOUT_PROBE = f"""<script>
for (const t of document.querySelectorAll("table.{stats_view.TABLE_CLASS}"))
  t.setAttribute("data-rendered-height", Math.round(t.getBoundingClientRect().height));
for (const i of document.querySelectorAll("img"))
  i.setAttribute("data-natural-width", i.naturalWidth);
</script>"""


def small_parameters(output_dir: Path) -> str:
    return "\n".join(
        [
            f"SAMPLE_ROWS = {SAMPLE_ROWS}",
            "TRAIN_STEPS = 20",
            "TUNER_TRIALS = 1",
            "TUNER_TRAIN_STEPS = 10",
            "MIN_AUC = 0.0",
            f"OUTPUT_DIR = {str(output_dir)!r}",
        ]
    )


def cell_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def section(notebook, heading: str) -> list:
    """The code cells under a markdown heading, up to the next heading of the same level."""
    level = heading.split(" ")[0] + " "
    start = next(
        i
        for i, c in enumerate(notebook.cells)
        if c.cell_type == "markdown" and c.source.startswith(heading)
    )
    cells = []
    for cell in notebook.cells[start + 1 :]:
        if cell.cell_type == "markdown" and cell.source.startswith(level):
            break
        if cell.cell_type == "code":
            cells.append(cell)
    return cells


def outputs(cells, mime: str) -> list[str]:
    return [
        o["data"][mime] for c in cells for o in c.get("outputs", []) if mime in o.get("data", {})
    ]


class Tables(HTMLParser):
    """Every table's attributes and body rows (cell texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[dict, list[list[str]]]] = []
        self._in_body = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append((dict(attrs), []))
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.tables[-1][1].append([])
        elif tag in ("td", "th") and self._in_body:
            self.tables[-1][1][-1].append("")

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False

    def handle_data(self, data):
        if self._in_body and self.tables and self.tables[-1][1] and self.tables[-1][1][-1]:
            self.tables[-1][1][-1][-1] += data


def tables(html: str) -> list[tuple[dict, list[list[str]]]]:
    parser = Tables()
    parser.feed(html)
    return parser.tables


def test_notebook_runs_and_shows_its_results_offline(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    committed_outputs = [cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"]
    assert not any(committed_outputs), "commit the notebook without outputs"

    (parameters,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    parameters.source = small_parameters(tmp_path)
    # Raises CellExecutionError, naming the cell, if any cell fails.
    NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()

    versions = list((tmp_path / "serving_model").iterdir())
    assert len(versions) == 1 and (versions[0] / "saved_model.pb").is_file()
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    text = "\n".join(cell_text(cell) for cell in code_cells)
    assert "Blessed: True" in text
    assert f"trained from input data: {tmp_path / 'data'}" in text
    assert f"{SAMPLE_ROWS:,} complaints" in text

    # Outputs, not log noise: no chatter line in any stream; Keras epochs stay out of sight.
    streams = "".join(o.get("text", "") for c in code_cells for o in c.get("outputs", []))
    for noise in NOISE:
        assert noise not in streams, f"{noise!r} in the notebook's stream outputs"
    assert (tmp_path / "tuner.log").read_text().count("Trial 1 Complete") == 1

    # Statistics: a table with one row per column of the data, numbers in it, and two charts.
    statistics = section(notebook, STATISTICS_SECTION)
    feature_tables = [
        t
        for html in outputs(statistics, "text/html")
        for t in tables(html)
        if t[0].get("class") == stats_view.TABLE_CLASS
    ]
    assert len(feature_tables) == 1, "the statistics section has no feature table (offline view)"
    ((attributes, rows),) = feature_tables
    assert attributes["data-split"] == "train"
    by_feature = {row[0]: row for row in rows}
    assert set(by_feature) == set(features.CANONICAL_COLUMNS)
    assert by_feature["product"][5].startswith("Mortgage (")  # top value, with its count
    assert by_feature[features.LABEL_KEY][6:] == ["0", by_feature[features.LABEL_KEY][7], "1"]
    assert float(by_feature[features.TEXT_KEY][3].rstrip("%")) > 0  # empty narratives shown
    assert len(outputs(statistics, "image/png")) == 1  # the charts: blank share, distinct values

    # AUC by product: slices under MIN_SLICE_EXAMPLES hidden and named; no AUC drawn as 0.
    evaluator = section(notebook, EVALUATOR_SECTION)
    hidden = re.search(
        r"Hidden, fewer than (\d+) test examples \((\d+) product slices\): (.*)", text
    )
    assert hidden and int(hidden[1]) == MIN_SLICE_EXAMPLES
    hidden_counts = [int(n) for n in re.findall(r"\((\d+)\)(?:, |$)", hidden[3])]
    assert len(hidden_counts) == int(hidden[2]) > 0
    assert all(n < MIN_SLICE_EXAMPLES for n in hidden_counts)
    ((_, shown),) = [t for html in outputs(evaluator, "text/html") for t in tables(html)]
    assert shown, "no product slice shown: the sample is too small for MIN_SLICE_EXAMPLES"
    for _, value, examples, positives, auc, note in shown:
        assert int(examples) >= MIN_SLICE_EXAMPLES and value not in hidden[3]
        one_class = int(float(positives)) in (0, int(examples))
        assert math.isnan(float(auc)) == one_class and (note == slice_view.UNDEFINED) == one_class
        assert one_class or float(auc) > 0
    # The sections issue 16 added: SchemaGen's difference, fairness at the decision threshold.
    schema_gen = "".join(map(cell_text, section(notebook, SCHEMA_GEN_SECTION)))
    assert re.search(r"Inferred vs curated schema: \S", schema_gen), schema_gen
    fairness_cells = section(notebook, FAIRNESS_SECTION)
    fairness_text = "".join(map(cell_text, fairness_cells))
    assert "Decision threshold: 0." in fairness_text and "precision" in fairness_text
    fairness_tables = [t for html in outputs(fairness_cells, "text/html") for t in tables(html)]
    assert fairness_tables and "overall" in [c.strip().lower() for c in fairness_tables[0][1][0]]
    assert len(outputs(fairness_cells, "image/svg+xml")) == 2  # AUC and FNR gaps
    images = outputs(code_cells, "image/png")
    assert len(images) >= 4  # label balance, statistics, training curves, AUC by product

    # As a person sees it: the exported HTML opened offline in Chromium.
    from nbconvert import HTMLExporter

    page, _ = HTMLExporter().from_notebook_node(notebook)
    assert page.count("</body>") == 1
    html_file = tmp_path / "notebook.html"
    html_file.write_text(page.replace("</body>", LAYOUT_PROBE + "</body>"), encoding="utf-8")
    dom = browser_dom(html_file)
    ((attributes, rows),) = [t for t in tables(dom) if t[0].get("class") == stats_view.TABLE_CLASS]
    assert {row[0] for row in rows} == set(features.CANONICAL_COLUMNS)
    assert int(attributes["data-rendered-height"]) > 20 * len(rows)
    widths = [int(w) for w in re.findall(r'data-natural-width="(\d+)"', dom)]
    charts = len(images) + len(outputs(code_cells, "image/svg+xml"))  # SVGs are <img> too
    assert len(widths) == charts and min(widths) > 100  # every chart decoded and drawn


def browser_dom(html_file: Path) -> str:
    """The page's DOM after headless Chromium loaded it with no network (names resolve
    nowhere, the proxy is a closed port), so only what is inline can render."""
    done = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=127.0.0.1:9",
            "--virtual-time-budget=5000",
            "--dump-dom",
            html_file.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout
