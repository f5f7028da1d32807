"""The interactive notebook, executed top to bottom by a real Jupyter kernel on a small sample."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from pipeline.config import PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "notebooks" / "interactive_pipeline.ipynb"


def small_parameters(output_dir: Path) -> str:
    return "\n".join(
        [
            "SAMPLE_ROWS = 1200",
            "TRAIN_STEPS = 20",
            "EVAL_STEPS = 4",
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


def test_notebook_runs_and_finds_the_lineage(tmp_path):
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
    text = "\n".join(cell_text(cell) for cell in notebook.cells if cell.cell_type == "code")
    assert "Blessed: True" in text
    assert f"trained from input data: {tmp_path / 'data'}" in text
    assert "1,200 complaints" in text
    images = [
        o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    assert len(images) >= 3  # label balance, training curves, AUC by product
