"""The data-validation gate: anomalies or drift stop the run before Transform and training.

A small custom component between ExampleValidator and Transform. It fails (so nothing
downstream runs, on every orchestrator) when ExampleValidator found anomalies against the
curated schema, or when a feature with a drift comparator moved past its threshold since
the previous data. Its error message, and report.failure_report() for the runners, say
which feature, what is wrong, and the values involved.
"""

# No `from __future__ import annotations`: TFX reads this component's signature at run time.

from tfx.dsl.component.experimental.annotations import InputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import ExampleAnomalies, ExampleStatistics, Schema

from pipeline.components.data_validation import DataValidationError, data_problems, explain


@component
def DataValidationGate(  # noqa: N802 (a TFX component is named like a class)
    anomalies: InputArtifact[ExampleAnomalies],
    statistics: InputArtifact[ExampleStatistics],
    schema: InputArtifact[Schema],
    previous_statistics: InputArtifact[ExampleStatistics] = None,
    code_fingerprint: Parameter[str] = "",
):
    """Raise DataValidationError on anomalies or drift; pass otherwise.

    code_fingerprint only keys the cache: a changed rule re-checks data it passed before.
    """
    previous_uri = previous_statistics.uri if previous_statistics is not None else None
    problems = data_problems(anomalies.uri, statistics.uri, schema.uri, previous_uri)
    if problems:
        raise DataValidationError(explain(problems))
