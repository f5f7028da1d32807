"""Wiring and lifetime: models, request log, REST (uvicorn) and gRPC servers, graceful stop.

On SIGTERM or SIGINT: both servers stop taking connections and finish the requests in flight
(each answered only after its log record is committed), then the versions are unloaded and the
request log is closed. Exit code 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

import uvicorn
import uvloop

from serving.batching import Batcher
from serving.errors import ServingError
from serving.grpc_aio import start_grpc
from serving.metrics import Metrics
from serving.options import Options
from serving.request_log import RequestLog
from serving.rest_app import create_app
from serving.rollout import RolloutError
from serving.routing import Router
from serving.service import PredictService
from serving.shadow_queue import ShadowQueue
from serving.versions import ModelManager, ModelSettings, VersionPolicy, read_model_config

log = logging.getLogger("serving")


def model_settings(options: Options) -> list[ModelSettings]:
    if options.model_config_file:
        try:
            return read_model_config(options.model_config_file)
        except ServingError as error:
            raise SystemExit(f"error: {error.message}") from None
    try:
        policy = VersionPolicy.parse(options.model_version_policy)
    except ValueError as error:
        raise SystemExit(f"error: --model_version_policy: {error}") from None
    return [ModelSettings(options.model_name, os.path.abspath(options.model_base_path), policy)]


def default_log_dir(settings: list[ModelSettings]) -> str:
    """Beside the served models: outputs/serving_model -> outputs/request_log."""
    return os.path.join(os.path.dirname(settings[0].base_path.rstrip("/")), "request_log")


def read_token(path: str) -> str | None:
    if not path:
        return None
    with open(path, encoding="utf-8") as handle:
        token = handle.read().strip()
    if not token:
        raise SystemExit(f"error: --auth_token_file {path} is empty")
    return token


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: this module stops REST and gRPC together."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def run(options: Options) -> int:
    token = read_token(options.auth_token_file)
    settings = model_settings(options)
    metrics = Metrics()

    def make_batcher(servable) -> Batcher:
        return Batcher(
            servable.run,
            options.max_batch_size if options.enable_batching else 1,
            options.batch_timeout_micros / 1e6,
            options.max_enqueued_examples,
            options.num_batch_threads,
            on_batch=metrics.batch_size.observe,
        )

    manager = ModelManager(
        settings, make_batcher, options.file_system_poll_wait_seconds, metrics.versions_changed
    )
    router = Router(manager, options.rollout_file, options.model_config_file)
    router.on_change = metrics.rollout_changed
    try:
        router.start()  # before any model loads or the request log is touched
    except RolloutError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    # The event loop, the model thread and the log thread hand work to each other many times a
    # millisecond; with Python's default 5 ms GIL switch interval a thread woken by another can
    # wait that long for the GIL. 0.5 ms keeps handoffs short (p99 drops by about half).
    sys.setswitchinterval(0.0005)
    request_log = None
    if options.enable_request_log:
        directory = options.request_log_dir or default_log_dir(settings)
        request_log = RequestLog(
            directory,
            options.log_features,
            int(options.request_log_max_mb * 2**20),
            options.request_log_keep,
            options.request_log_sync.upper(),
            on_commit=metrics.log_committed,
        )
        log.info("request log: %s (features: %s)", request_log.path, options.log_features)
    manager.start()  # the first load happens before the ports open, as in TF Serving
    shadow_queue = ShadowQueue(
        options.shadow_batch_timeout_micros / 1e6,
        options.max_batch_size,
        options.max_enqueued_examples,
    )
    service = PredictService(
        manager,
        request_log,
        metrics,
        options.max_instances,
        options.max_in_flight,
        router,
        shadow_queue,
    )
    if options.rollout_file:
        log.info("rollout: %s", [r.to_json() for r in router.routes.rollouts.values()])
    reload = router.reload  # model config and rollout together, or neither

    grpc_server = None
    if options.port:
        grpc_server = start_grpc(
            options.host,
            options.port,
            service,
            token,
            options.max_request_bytes,
            options.grpc_threads,
        )
        log.info("gRPC API on %s:%d", options.host, options.port)
    try:
        uvloop.run(_serve(options, service, token, reload, grpc_server))
    finally:
        shadow_queue.close()  # its last copies are scored and logged before the log closes
        manager.stop()
        if request_log is not None:
            request_log.close()
        log.info("stopped")
    return 0


async def _serve(options: Options, service: PredictService, token, reload, grpc_server) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    grpc_done = []
    rest = None
    if options.rest_api_port:
        app = create_app(service, token, options.max_request_bytes, reload)
        config = uvicorn.Config(
            app,
            host=options.host,
            port=options.rest_api_port,
            loop="none",
            http="httptools",
            lifespan="off",
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=int(options.graceful_shutdown_seconds),
        )
        rest = _Server(config)

    def stop(signum: int) -> None:
        log.info("signal %d: finishing requests in flight", signum)
        stopping.set()
        if rest is not None:
            rest.should_exit = True
        if grpc_server is not None and not grpc_done:  # both drain at the same time
            grpc_done.append(grpc_server.stop(grace=options.graceful_shutdown_seconds))

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)
    names = sorted(service.manager.models)
    if rest is not None:
        log.info(
            "REST API on http://%s:%d/v1/models/%s", options.host, options.rest_api_port, names[0]
        )
        await rest.serve()
    else:
        await stopping.wait()
    if grpc_server is not None:
        if not grpc_done:  # REST ended on its own (a port already in use, say)
            grpc_done.append(grpc_server.stop(grace=options.graceful_shutdown_seconds))
        await loop.run_in_executor(None, grpc_done[0].wait)
