"""python -m lineage.schema_proposal propose: what new data breaks, and the schema it needs."""

from __future__ import annotations

from conftest import bundled_rows, write_rows
from support.faults import ROWS_KEPT, unknown_product


def test_schema_proposal_names_the_new_value_and_adds_it_to_the_domain(tmp_path):
    from lineage import schema_proposal

    write_rows(unknown_product(bundled_rows(every=ROWS_KEPT)), tmp_path / "complaints.csv")
    problems, current, proposed = schema_proposal.propose(str(tmp_path))

    assert any(p.startswith("product:") and "Crypto wallet" in p for p in problems), problems
    assert "Crypto wallet" not in current and 'value: "Crypto wallet"' in proposed
    # The project's rules survive the update: the label stays 0/1, drift comparators stay.
    assert proposed.count("drift_comparator") == len(schema_proposal.DRIFT_THRESHOLDS)
    assert "min: 0\n    max: 1" in proposed
