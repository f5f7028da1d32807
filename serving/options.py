"""The server's settings; flag names are TF Serving's where it has one (see __main__).

Every number has its allowed Range (pipeline/bounds.py): the flags parse through it, so nan, a
negative count or an absurd size is refused in one line before anything loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cli import bounds


def _number(default: float, allowed: bounds.Range):
    return field(default=default, metadata={"bounds": allowed})


@dataclass
class Options:
    model_name: str = "default"
    model_base_path: str = ""
    model_config_file: str = ""
    rollout_file: str = ""
    model_version_policy: str = "latest"
    host: str = "127.0.0.1"
    port: int = _number(8500, bounds.PORT_OR_OFF)
    rest_api_port: int = _number(8501, bounds.PORT_OR_OFF)
    file_system_poll_wait_seconds: float = _number(1.0, bounds.seconds(86_400))
    enable_batching: bool = True
    max_batch_size: int = _number(64, bounds.count(1, 65_536))
    batch_timeout_micros: int = _number(0, bounds.count(0, 60_000_000, "microseconds"))
    shadow_batch_timeout_micros: int = _number(20_000, bounds.count(0, 60_000_000, "microseconds"))
    num_batch_threads: int = _number(1, bounds.count(1, 256))
    max_enqueued_examples: int = _number(4096, bounds.count(1, 10**8))
    # gRPC's message limit is a signed 32-bit size.
    max_request_bytes: int = _number(4 * 2**20, bounds.count(1024, 2**31 - 1, "bytes"))
    max_instances: int = _number(1024, bounds.count(1, 10**7))
    max_in_flight: int = _number(512, bounds.count(1, 10**6))
    grpc_threads: int = _number(16, bounds.count(1, 1024))
    enable_request_log: bool = True
    request_log_dir: str = ""
    log_features: str = "all"
    request_log_max_mb: float = _number(
        256.0, bounds.Range(0.0, 10**6, above=True, meaning="megabytes")
    )
    request_log_keep: int = _number(3, bounds.count(0, 100_000))
    request_log_sync: str = "normal"
    auth_token_file: str = ""
    graceful_shutdown_seconds: float = _number(30.0, bounds.seconds(3600))
