"""The gRPC server: grpc.aio on an event loop of its own, with TF Serving's services
(grpc_service.py) and the Open Inference Protocol's (oip_grpc.py) on one port.

Predict, Classify and Regress await the same futures the REST handlers await; the other methods
run on a thread pool.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from serving import oip_grpc
from serving.errors import ServingError
from serving.grpc_service import (
    CLASSIFY,
    REGRESS,
    ModelServicer,
    PredictionServicer,
    _Auth,
)
from serving.service import PredictService


class AsyncPredictionServicer(PredictionServicer):
    """The same handlers for grpc.aio: a request waits for the model on the server's event loop.

    grpcio's thread-pool server wakes a pool thread for each call, again for its message and
    again for its answer; with 8 calls in flight those threads and the model and log threads
    fight for the GIL (39 context switches a request, measured). On one event loop a call
    costs half the switches and about a third less CPU (benchmarks/README.md).
    """

    async def _arun(self, context, api: str, spec, fill: Callable) -> tuple:
        """_run, awaiting the answer instead of blocking a thread on it."""
        request, allowed = self._begin(context, api, spec)
        if not allowed:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, _Auth.REFUSED)
        try:
            with self._serving(request, fill) as future:
                outputs = await _answer(future)
        except ServingError as error:
            await context.abort(error.code, error.message)
        self._answered(request, context)
        return request.call, outputs

    async def Predict(self, request, context):  # noqa: N802 (gRPC method name)
        fill = self._predict_fill(request)
        call, outputs = await self._arun(context, "predict", request.model_spec, fill)
        try:
            return self._predict_response(request, call, outputs)
        except ServingError as error:
            await context.abort(error.code, error.message)

    async def Classify(self, request, context):  # noqa: N802
        fill = self._example_fill(request, "classify", CLASSIFY)
        found = await self._arun(context, "classify", request.model_spec, fill)
        return self._classify_response(*found)

    async def Regress(self, request, context):  # noqa: N802
        fill = self._example_fill(request, "regress", REGRESS)
        found = await self._arun(context, "regress", request.model_spec, fill)
        return self._regress_response(*found)


async def _answer(future: Future):
    """The result of a service future, awaited; a cancelled call leaves the future alone (the
    model and log threads still settle it), so they never meet a cancelled future."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def settle(done: Future) -> None:
        if not waiter.cancelled():
            error = done.exception()
            if error is None:
                waiter.set_result(done.result())
            else:
                waiter.set_exception(error)

    future.add_done_callback(lambda done: loop.call_soon_threadsafe(settle, done))
    return await waiter


class GrpcServer:
    """A grpc.aio server on an event loop of its own (a thread beside uvicorn's loop).

    Predict, Classify and Regress run on the loop; the other methods are plain functions and
    run on a thread pool (`threads`), as before. stop(grace) returns what grpc.Server.stop
    returns: something to wait() on, here until the calls in flight are answered.
    """

    def __init__(self, make: Callable[[], grpc.aio.Server]):
        import uvloop

        self.loop = uvloop.new_event_loop()
        started: Future = Future()
        self._thread = threading.Thread(
            target=self._serve, args=(make, started), name="grpc-loop", daemon=True
        )
        self._thread.start()
        self._server = started.result()  # raises what starting raised (a port in use, say)

    def _serve(self, make: Callable[[], grpc.aio.Server], started: Future) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> grpc.aio.Server:
            server = make()
            await server.start()
            return server

        try:
            started.set_result(self.loop.run_until_complete(start()))
        except BaseException as error:  # noqa: BLE001 (handed to the starting thread)
            started.set_exception(error)
            return
        self.loop.run_forever()

    def stop(self, grace: float | None) -> _Stopped:
        return _Stopped(self.loop, self._thread, self._server.stop(grace))


class _Stopped:
    def __init__(self, loop, thread: threading.Thread, stopping):
        self._loop, self._thread = loop, thread
        self._done = asyncio.run_coroutine_threadsafe(stopping, loop)

    def wait(self, timeout: float | None = None) -> bool:
        self._done.result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        return True


def start_grpc(
    host: str,
    port: int,
    service: PredictService,
    token: str | None,
    max_message_bytes: int,
    threads: int = 16,
) -> GrpcServer:
    def make() -> grpc.aio.Server:
        server = grpc.aio.server(
            migration_thread_pool=futures.ThreadPoolExecutor(
                max_workers=threads, thread_name_prefix="grpc"
            ),
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            AsyncPredictionServicer(service, token), server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            ModelServicer(service.router, token), server
        )
        oip_grpc.add_to_server(server, service, token)  # the Open Inference Protocol, same port
        server.add_insecure_port(f"{host}:{port}")
        return server

    return GrpcServer(make)
