"""The HTTP application: TF Serving's REST API (rest.py) and the Open Inference Protocol's /v2
routes (oip_rest.py) on one Starlette app, so each front end imports only what it shares."""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette

from serving import oip_rest
from serving.rest import ROUTES, RestContext, internal_error
from serving.service import PredictService


def create_app(
    service: PredictService,
    token: str | None = None,
    max_body_bytes: int = 4 * 2**20,
    reload: Callable[[], None] | None = None,
) -> Starlette:
    # /v2 first: rest.ROUTES ends with the catch-all that answers TF Serving's 404.
    app = Starlette(
        routes=[*oip_rest.ROUTES, *ROUTES], exception_handlers={Exception: internal_error}
    )
    app.state.rest = RestContext(service, token, max_body_bytes, reload or service.router.reload)
    return app
