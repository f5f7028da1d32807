"""Every knob of the pipeline in one typed place, overridable from the command line."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ml_metadata.proto import metadata_store_pb2

from cli import bounds
from pipeline import names
from pipeline.metadata.files import is_remote as is_uri  # one test of "remote", as files read it

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_DATA_DIR = PROJECT_ROOT / "data" / "sample"
DEFAULT_OUTPUT_DIR = PROJECT_ROOT / "outputs"
SCHEMA_FILE = PROJECT_ROOT / "pipeline" / "schema" / "schema.pbtxt"
SPAN_TOKEN = "{SPAN}"
MYSQL_PASSWORD_ENV = "MLMD_MYSQL_PASSWORD"
BEAM_RUNNING_MODES = ("in_memory", "multi_threading", "multi_processing")
# How a newly pushed version enters serving (monitoring/continuous.py): replace is TF Serving's.
ROLLOUT_MODES = ("replace", "canary", "shadow")
# Slices with fewer test examples are listed by name and count, not shown with metrics: even
# the interval of a handful of examples is unreliable, and AUC undefined with one class.
MIN_SLICE_EXAMPLES = 20


def _option(default, help: str, bounds: bounds.Range | None = None, **kwargs):  # noqa: A002
    """A setting: its default, its --help, and for a number its allowed Range (required)."""
    if isinstance(default, int | float) and not isinstance(default, bool) and bounds is None:
        raise TypeError(f"a numeric setting needs a Range ({help!r})")
    return field(default=default, metadata={"help": help, "bounds": bounds, **kwargs})


@dataclass(frozen=True)
class PipelineConfig:
    """Paths, training budget, blessing thresholds, Beam and MLMD settings."""

    pipeline_name: str = _option("cfpb-dispute", "name of the pipeline in MLMD")
    data_dir: str = _option(
        str(BUNDLED_DATA_DIR), "folder of prepared CSV files (python -m data.prepare)"
    )
    input_pattern: str = _option(
        "*.csv",
        f"files under --data-dir to read; with {SPAN_TOKEN} (e.g. span-{SPAN_TOKEN}/*.csv) "
        "each run reads the newest span",
    )
    span: int = _option(
        0,
        f"with {SPAN_TOKEN} in --input-pattern, read this span instead of the newest "
        "(continuous training reads spans in order)",
        bounds.count(0, meaning="a span number; 0: the newest"),
    )
    schema_file: str = _option(
        str(SCHEMA_FILE),
        "the curated schema data is validated against (python -m lineage.schema_proposal)",
    )
    output_dir: str = _option(
        str(DEFAULT_OUTPUT_DIR), "where artifacts, the MLMD store and pushed models go"
    )
    train_steps: int = _option(
        300,
        "Trainer's training steps (batches of 64; ~4 epochs of the sample)",
        bounds.count(1, 10**8),
    )
    tune: bool = _option(
        False,
        "run the Tuner in this run. Without it, the latest tuned hyperparameters in MLMD are "
        "reused, and a pipeline with none yet tunes (pipeline/hyperparameters.py)",
    )
    tuner_trials: int = _option(4, "hyperparameter sets the Tuner tries", bounds.count(1, 10_000))
    tuner_train_steps: int = _option(
        300, "training steps of each Tuner trial", bounds.count(1, 10**8)
    )
    validation_percent: int = _option(
        15,
        "share of the examples in the validation split (Tuner's choice, early stopping, the "
        "decision threshold); train gets what validation and test leave",
        bounds.count(5, 40, "percent"),
    )
    test_percent: int = _option(
        15,
        "share of the examples in the test split (the Evaluator, blessing, fairness, model card)",
        bounds.count(5, 40, "percent"),
    )
    min_auc: float = _option(
        0.55,
        "lowest overall test AUC (point estimate) that can bless a model",
        bounds.fraction("an AUC"),
    )
    max_auc_drop: float = _option(
        0.0,
        "how much lower than the last blessed model's AUC a new model may be and still be "
        "pushed: refused when the paired difference on the test rows is significantly worse",
        bounds.fraction("an AUC difference; 0: no worse than the last blessed model"),
    )
    strict_auc_comparison: bool = _option(
        False,
        "compare with the last blessed model by the point estimates of AUC, not by the paired "
        "difference's interval: any drop past --max-auc-drop refuses, noise or not",
    )
    bootstrap_resamples: int = _option(
        1000,
        "resamples behind every reported interval (Poisson bootstrap of the test split)",
        bounds.count(100, 100_000),
    )
    min_slice_examples: int = _option(
        MIN_SLICE_EXAMPLES,
        "test examples a slice needs to be shown, with its interval, in fairness and per-slice "
        "reports and to be judged by the fairness gate (smaller ones are listed by count)",
        bounds.count(1),
    )
    fairness_gate: str = _option(
        "",
        "groups the fairness gate protects, as the fairness report names them, separated by ';' "
        "(e.g. 'tags: Older American; tags: Servicemember'); empty: no fairness gate",
    )
    fairness_max_auc_gap: float = _option(
        0.05,
        "fairness gate: how far below overall a group's AUC may be and still bless",
        bounds.fraction("an AUC difference"),
    )
    fairness_max_fnr_gap: float = _option(
        0.10,
        "fairness gate: how far above overall a group's FNR may be and still bless",
        bounds.fraction("a rate difference"),
    )
    seed: int = _option(
        0, "random seed for Tuner, Trainer and the Evaluator's resamples", bounds.SEED
    )
    direct_running_mode: str = _option(
        "in_memory",
        "Beam DirectRunner mode of data-heavy components. On 2 cores, multi_processing with 2 "
        "workers lost at 105k rows and won by 14%% at 422k, at 3.9 GiB peak instead of 1.4 "
        "(benchmarks/README.md)",
        choices=BEAM_RUNNING_MODES,
    )
    direct_num_workers: int = _option(
        1, "Beam DirectRunner workers (0: one per core)", bounds.count(0, 1024)
    )
    extra_beam_args: tuple[str, ...] = _option(
        (), "further Beam pipeline argument, e.g. --beam-arg=--runner=DataflowRunner (repeatable)"
    )
    mlflow_tracking_uri: str = _option(
        "",
        "after each run, log it to MLflow (docs/mlflow.md): a tracking server "
        "(http://HOST:5000), or 'local' for a store under --output-dir/mlruns; empty: off",
    )
    rollout: str = _option(
        "replace",
        "how a newly pushed version enters serving: replace (the server's latest policy swaps "
        "to it), canary (a share of traffic) or shadow (scores copies of requests), by the "
        "rollout of --rollout-model-config and --rollout-file (docs/ab-testing.md)",
        choices=ROLLOUT_MODES,
    )
    rollout_canary_percent: float = _option(
        10.0,
        "with --rollout canary: the share of traffic the new version takes",
        bounds.Range(0.0, 100.0, above=True, meaning="percent of traffic"),
    )
    rollout_shadow_fraction: float = _option(
        1.0,
        "with --rollout shadow: the share of requests the new version scores a copy of",
        bounds.fraction("a share of requests", above=True),
    )
    rollout_model_config: str = _option(
        "",
        "TF Serving's model config the server reads (--model_config_file), rewritten when a "
        "version enters; empty: <output-dir>/models.config",
    )
    rollout_file: str = _option("", "the server's --rollout_file; empty: beside the model config")
    rollout_server_url: str = _option(
        "http://127.0.0.1:8501",
        "the model server asked to reload when a version enters; empty: only write the files",
    )
    rollout_token_file: str = _option(
        "", "the server's bearer token (its --auth_token_file), sent with the reload"
    )
    mysql_host: str = _option(
        "", f"MLMD on MySQL at this host (password from ${MYSQL_PASSWORD_ENV})"
    )
    mysql_port: int = _option(3306, "MySQL port for MLMD", bounds.PORT)
    mysql_database: str = _option("mlmd", "MySQL database for MLMD")
    mysql_user: str = _option("root", "MySQL user for MLMD")

    def __post_init__(self) -> None:
        for name in ("data_dir", "output_dir"):
            location = str(getattr(self, name))
            object.__setattr__(
                self, name, location if is_uri(location) else os.path.abspath(location)
            )

    @property
    def split_buckets(self) -> list[tuple[str, int]]:
        """ExampleGen's splits and their hash buckets, out of 100: percentages."""
        validation, test = self.validation_percent, self.test_percent
        return [
            (names.TRAIN, 100 - validation - test),
            (names.VALIDATION, validation),
            (names.TEST, test),
        ]

    @property
    def pipeline_root(self) -> str:
        return join_location(self.output_dir, "pipeline_root")

    @property
    def metadata_path(self) -> Path:
        return Path(self.output_dir) / "metadata.sqlite"

    @property
    def serving_model_dir(self) -> str:
        return join_location(self.output_dir, "serving_model")

    @property
    def beam_pipeline_args(self) -> list[str]:
        args = [
            f"--direct_running_mode={self.direct_running_mode}",
            f"--direct_num_workers={self.direct_num_workers}",
            *self.extra_beam_args,
        ]
        runners = [a.split("=", 1)[-1] for a in self.extra_beam_args if a.startswith("--runner")]
        if not runners or runners[-1] in ("DirectRunner", "direct"):
            # Without a dependency flag, every Beam component copies TFX's install and builds
            # an sdist of it for remote workers (1 s, and 42 MB left in /tmp, per component).
            # DirectRunner's workers share this environment and ignore the flag.
            args.append(f"--setup_file={PROJECT_ROOT / 'setup.py'}")
        return args

    def metadata_connection_config(self) -> metadata_store_pb2.ConnectionConfig | None:
        """MySQL when mysql_host is set, else SQLite under a local output_dir.

        None for a remote output_dir without MySQL: there the orchestrator (Kubeflow,
        Vertex AI) brings its own MLMD.
        """
        if not self.mysql_host and is_uri(self.output_dir):
            return None
        connection = metadata_store_pb2.ConnectionConfig()
        if self.mysql_host:
            connection.mysql.host = self.mysql_host
            connection.mysql.port = self.mysql_port
            connection.mysql.database = self.mysql_database
            connection.mysql.user = self.mysql_user
            connection.mysql.password = os.environ.get(MYSQL_PASSWORD_ENV, "")
        else:
            self.metadata_path.parent.mkdir(parents=True, exist_ok=True)
            connection.sqlite.filename_uri = str(self.metadata_path)
            connection.sqlite.connection_mode = (
                metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
            )
        return connection


class PasswordRedactor(logging.Filter):
    """Masks the MLMD password in log records: TFX logs the MLMD connection config whole.

    The value is read as the quoted string it is, to its real closing quote, escapes included
    (\\" and \\\\ in protobuf text and JSON, \\' in a Python repr), so a password with quotes,
    backslashes or non-ASCII characters is masked whole.
    """

    PASSWORD = re.compile(
        r"""(password["']?\s*[:=]\s*)("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""", re.IGNORECASE
    )

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "assword" in message:
            record.msg, record.args = self.PASSWORD.sub(r'\1"***"', message), None
        return True


def redact_passwords_in_logs(*handlers: logging.Handler) -> None:
    """Keep the MLMD password out of TFX's log (absl) and of the given handlers."""
    absl_logger = logging.getLogger("absl")
    if not any(isinstance(f, PasswordRedactor) for f in absl_logger.filters):
        absl_logger.addFilter(PasswordRedactor())
    for handler in handlers:
        handler.addFilter(PasswordRedactor())


def join_location(base: str, name: str) -> str:
    """base/name for a local folder or a gs:// or s3:// URI alike."""
    return f"{base.rstrip('/')}/{name}"


def flag_name(name: str) -> str:
    """The runner flag of a PipelineConfig field: --train-steps; Beam's own --direct_* spelling."""
    return "--" + (name if name.startswith("direct_") else name.replace("_", "-"))


def add_config_arguments(parser, names: tuple[str, ...] | None = None) -> None:
    """One --flag per PipelineConfig field (or per named field), with its default and help."""
    for config_field in dataclasses.fields(PipelineConfig):
        if names is not None and config_field.name not in names:
            continue
        flag = flag_name(config_field.name)
        help_text = config_field.metadata["help"]
        extra = {k: v for k, v in config_field.metadata.items() if k not in ("help", "bounds")}
        if config_field.name == "extra_beam_args":
            parser.add_argument(
                "--beam-arg", dest=config_field.name, action="append", default=[], help=help_text
            )
            continue
        default, allowed = config_field.default, config_field.metadata["bounds"]
        if isinstance(default, bool):  # a switch: present or not
            parser.add_argument(
                flag, dest=config_field.name, action="store_true", help=help_text, **extra
            )
            continue
        parser.add_argument(
            flag,
            dest=config_field.name,
            type=allowed.parse if allowed else str,
            default=default,
            help=f"{help_text} (default: {default})",
            **extra,
        )


def config_arguments(config: PipelineConfig) -> list[str]:
    """The runner flags that rebuild `config` (those that differ from the defaults)."""
    flags = []
    for config_field in dataclasses.fields(PipelineConfig):
        value = getattr(config, config_field.name)
        if value == getattr(PipelineConfig(), config_field.name):
            continue
        if config_field.name == "extra_beam_args":
            flags += [f"--beam-arg={arg}" for arg in value]
        elif isinstance(value, bool):
            flags.append(flag_name(config_field.name))  # only True differs
        else:
            flags += [flag_name(config_field.name), str(value)]
    return flags


def config_from_arguments(args: argparse.Namespace) -> PipelineConfig:
    """A PipelineConfig from parsed flags."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(PipelineConfig)}
    values["extra_beam_args"] = tuple(values["extra_beam_args"])
    return PipelineConfig(**values)
