"""The server's settings; flag names are TF Serving's where it has one (see __main__)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Options:
    model_name: str = "default"
    model_base_path: str = ""
    model_config_file: str = ""
    model_version_policy: str = "latest"
    host: str = "127.0.0.1"
    port: int = 8500
    rest_api_port: int = 8501
    file_system_poll_wait_seconds: float = 1.0
    enable_batching: bool = True
    max_batch_size: int = 64
    batch_timeout_micros: int = 0
    num_batch_threads: int = 1
    max_enqueued_examples: int = 4096
    max_request_bytes: int = 4 * 2**20
    max_instances: int = 1024
    max_in_flight: int = 512
    grpc_threads: int = 16
    enable_request_log: bool = True
    request_log_dir: str = ""
    log_features: str = "all"
    request_log_max_mb: float = 256.0
    request_log_keep: int = 3
    request_log_sync: str = "normal"
    auth_token_file: str = ""
    graceful_shutdown_seconds: float = 30.0
