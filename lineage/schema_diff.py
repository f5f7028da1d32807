"""What this run's data would change in the curated schema: SchemaGen's inference against it.

SchemaGen infers a schema from the run's statistics; the curated schema (SchemaImporter) is
what data is validated against. Their difference is informational: new feature values,
features whose presence or type changed, features that appeared or are missing. It never
stops a run (the data gate judges anomalies against the curated schema alone); the run
summary shows it, `python -m lineage trace` too, and `lineage.schema_proposal propose --output-dir`
builds the proposal on the run's inferred schema. Functions here return plain rows and text
for the notebook as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_metadata as mlmd

from pipeline import names
from pipeline.metadata import artifacts, store

MAX_VALUES_SHOWN = 5


@dataclass(frozen=True)
class SchemaChange:
    feature: str
    kind: str  # "new values", "presence", "type", "new feature", "missing feature"
    detail: str

    def __str__(self) -> str:
        return f"{self.feature}: {self.kind} ({self.detail})"


def _domain_values(schema, feature) -> list[str]:
    if feature.HasField("string_domain"):
        return list(feature.string_domain.value)
    if feature.domain:
        for domain in schema.string_domain:
            if domain.name == feature.domain:
                return list(domain.value)
    return []


def schema_difference(inferred, curated) -> list[SchemaChange]:
    """How the inferred schema differs from the curated one, feature by feature.

    Domains only count where the curated schema keeps one (the stable categoricals): an
    inferred domain of a free-text feature means nothing.
    """
    from tensorflow_metadata.proto.v0 import schema_pb2

    type_name = schema_pb2.FeatureType.Name
    wanted = {f.name: f for f in curated.feature}
    found = {f.name: f for f in inferred.feature}
    changes = [
        SchemaChange(n, "new feature", type_name(found[n].type))
        for n in found.keys() - wanted.keys()
    ]
    changes += [
        SchemaChange(n, "missing feature", "not in the data") for n in wanted.keys() - found.keys()
    ]
    for name in sorted(wanted.keys() & found.keys()):
        before, after = wanted[name], found[name]
        if before.type != after.type:
            changes.append(
                SchemaChange(name, "type", f"{type_name(before.type)} -> {type_name(after.type)}")
            )
        required, seen = before.presence.min_fraction, after.presence.min_fraction
        if seen < required:
            changes.append(SchemaChange(name, "presence", f"min_fraction {required:g} -> {seen:g}"))
        known = set(_domain_values(curated, before))
        if known:
            new = sorted(set(_domain_values(inferred, after)) - known)
            if new:
                shown = ", ".join(repr(v) for v in new[:MAX_VALUES_SHOWN])
                more = (
                    f" and {len(new) - MAX_VALUES_SHOWN} more"
                    if len(new) > MAX_VALUES_SHOWN
                    else ""
                )
                changes.append(SchemaChange(name, "new values", f"{len(new)}: {shown}{more}"))
    return sorted(changes, key=lambda c: (c.feature, c.kind))


def difference_rows(changes: list[SchemaChange]) -> list[dict[str, str]]:
    """The difference as table rows (feature, kind, detail), for the notebook."""
    return [{"feature": c.feature, "change": c.kind, "detail": c.detail} for c in changes]


def one_line(changes: list[SchemaChange] | None) -> str:
    """The run summary's line: 'none', or the changes separated by '; '."""
    if changes is None:
        return "not computed (no SchemaGen output in this run)"
    return "; ".join(map(str, changes)) or "none"


def difference_of_uris(inferred_uri: str, curated_uri: str) -> list[SchemaChange]:
    """The difference between two Schema artifacts (e.g. SchemaGen's and SchemaImporter's
    outputs in the notebook)."""
    return schema_difference(
        artifacts.load_schema(inferred_uri), artifacts.load_schema(curated_uri)
    )


def run_schema_uris(mlmd_store: mlmd.MetadataStore, run_id: str) -> tuple[str | None, str | None]:
    """(SchemaGen's inferred schema, SchemaImporter's curated schema) of a run, by URI."""
    uris: dict[str, str] = {}
    for record in store.run_executions(mlmd_store, run_id):
        if record.node_id in (names.SCHEMA_GEN, names.SCHEMA_IMPORTER):
            outputs = store.run_outputs(mlmd_store, record.execution.id)
            found = outputs.get("schema") or outputs.get(names.CURATED_SCHEMA_KEY)
            if found:
                uris[record.node_id] = found[0].uri
    return uris.get(names.SCHEMA_GEN), uris.get(names.SCHEMA_IMPORTER)


def run_difference(mlmd_store: mlmd.MetadataStore, run_id: str) -> list[SchemaChange] | None:
    """The schema difference of a run, or None when it has no inferred or curated schema."""
    inferred_uri, curated_uri = run_schema_uris(mlmd_store, run_id)
    if inferred_uri is None or curated_uri is None:
        return None
    return schema_difference(
        artifacts.load_schema(inferred_uri), artifacts.load_schema(curated_uri)
    )


def apply_difference(curated, inferred, changes: list[SchemaChange]):
    """The curated schema with the difference accepted: new values join their domain, new
    features and changed types or presence are taken from the inferred schema (a new proto;
    lineage.schema_proposal.curate applies the project's rules on top)."""
    proposed = type(curated)()
    proposed.CopyFrom(curated)
    found = {f.name: f for f in inferred.feature}
    features = {f.name: f for f in proposed.feature}
    for change in changes:
        source = found.get(change.feature)
        if change.kind == "new feature":
            proposed.feature.add().CopyFrom(source)
        elif change.kind == "missing feature":
            continue  # absent from this data is not absent from the form: keep it
        elif change.kind == "type":
            features[change.feature].type = source.type
        elif change.kind == "presence":
            features[change.feature].presence.CopyFrom(source.presence)
        elif change.kind == "new values":
            target = features[change.feature]
            domain = next(
                (d for d in proposed.string_domain if d.name == target.domain),
                target.string_domain,
            )
            known = set(domain.value)
            domain.value.extend(v for v in _domain_values(inferred, source) if v not in known)
    return proposed
