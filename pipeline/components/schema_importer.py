"""ImportSchemaGen whose cache key includes the schema's content, not only its path.

TFX reuses a cached execution when the exec properties and inputs are unchanged. Stock
ImportSchemaGen's only property is the file path, so an edited schema (for example after
`python -m lineage.schema_proposal propose --write`) was silently ignored on an existing output
folder: the old schema stayed in force. The SHA-256 of the file is a property here, so an edit
makes a new execution; the executor is TFX's own.
"""

from __future__ import annotations

from tfx import types
from tfx.components.schema_gen.import_schema_gen import executor as import_schema_gen_executor
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from pipeline.components.provenance import file_sha256
from pipeline.names import CURATED_SCHEMA_KEY

SCHEMA_SHA256 = "schema_sha256"


class CuratedSchemaImporterSpec(standard_component_specs.ImportSchemaGenSpec):
    PARAMETERS = {
        **standard_component_specs.ImportSchemaGenSpec.PARAMETERS,
        SCHEMA_SHA256: ExecutionParameter(type=str),
    }
    OUTPUTS = {CURATED_SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema)}


class CuratedSchemaImporterExecutor(import_schema_gen_executor.Executor):
    """TFX's own executor, handed our output under the key it writes."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX API)
        outputs = {standard_component_specs.SCHEMA_KEY: output_dict[CURATED_SCHEMA_KEY]}
        super().Do(input_dict, outputs, exec_properties)


class CuratedSchemaImporter(ImportSchemaGen):
    """Imports `schema_file`; `content_file` (default: the same file) is what is hashed.

    They differ on KFP, where tasks read the image's copy of the schema while the spec is
    compiled from the checkout that built the image.
    """

    SPEC_CLASS = CuratedSchemaImporterSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(CuratedSchemaImporterExecutor)

    def __init__(self, schema_file: str, content_file: str | None = None) -> None:
        spec = CuratedSchemaImporterSpec(
            schema_file=schema_file,
            schema_sha256=file_sha256(content_file or schema_file),
            curated_schema=types.Channel(type=standard_artifacts.Schema),
        )
        base_component.BaseComponent.__init__(self, spec=spec)
