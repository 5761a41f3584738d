"""Liveness (``/healthz``), readiness (``/readyz``), Prometheus ``/metrics`` (admin), and the interactive docs
(``/docs``, ``/redoc``) served with their assets from the package's own files, so they work offline."""

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse

from ..auth import Who
from ..schemas import ErrorBody, Health

router = APIRouter(tags=["health"])
ASSETS = "/docs-assets"


def assets_folder() -> Path:
    """Swagger UI and ReDoc, as the fastapi-offline package ships them."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


@router.get("/healthz", response_model=Health)
def healthz() -> dict[str, str]:
    """Liveness: the process answers (200 even while the store is busy)."""
    return {"status": "ok"}


@router.head("/healthz", response_model=Health)
def healthz_head() -> dict[str, str]:
    """Liveness, without a body."""
    return {"status": "ok"}


NOT_READY: dict[int | str, dict[str, Any]] = {503: {"model": ErrorBody, "description": "Starting or stopping."}}


@router.head("/readyz", response_model=Health, responses=NOT_READY)
def readyz_head(request: Request) -> Any:
    """Readiness, without a body."""
    return readyz(request)


@router.get("/readyz", response_model=Health, responses=NOT_READY)
def readyz(request: Request) -> Any:
    """Readiness: the store is open and the encoders are loaded (503 until then, and while stopping)."""
    state = request.app.state
    if state.asif is None or not state.ready:
        return JSONResponse({"error": "not ready: the store or the encoders are still loading"}, status_code=503,
                            headers={"Retry-After": "1"})
    return {"status": "ok"}


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(who: Who, request: Request) -> Response:
    """Prometheus metrics (admin key: they name every tenant)."""
    who.require_admin("reading the metrics")
    m = request.app.state.metrics
    return Response(m.render(), media_type=m.content_type)


@router.get("/docs", include_in_schema=False)
def swagger(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url, title="asif-qdrant API",
        oauth2_redirect_url="/docs/oauth2-redirect",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon.png",
        swagger_ui_parameters={"persistAuthorization": True, "validatorUrl": None},
    )


@router.get("/docs/oauth2-redirect", include_in_schema=False)
def swagger_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc", include_in_schema=False)
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url=request.app.openapi_url, title="asif-qdrant API",
                          redoc_js_url=f"{ASSETS}/redoc.standalone.js", redoc_favicon_url=f"{ASSETS}/favicon.png",
                          with_google_fonts=False)
