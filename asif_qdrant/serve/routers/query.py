"""Queries: classify, search, explain (vectors, files under the allowed folders, or uploads)."""

# no `from __future__ import annotations`: FastAPI reads the endpoint annotations at runtime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from ...asif import Asif
from ...errors import ConfigError
from ..auth import Principal, Who
from ..deps import bounded, image_path, read_images, redact, roots_for, store
from ..schemas import ClassifyBody, ExplainBody, PredictionsAnswer, SearchAnswer, SearchBody

router = APIRouter(prefix="/v1", tags=["query"])


def predictions(preds: list[Any]) -> dict[str, Any]:
    return {"predictions": [p.as_dict() for p in preds]}


def explanation(request: Request, who: Principal, a: Asif, ex: Any, fmt: str, image: Any, tenant: str,
                shown: str | None) -> Any:
    roots = roots_for(request, a, tenant)
    ex = redact(who, ex, roots, shown)
    if fmt == "html":
        from ...evaluation.report import Confined, render_html

        return HTMLResponse(render_html(ex, image, image_roots=Confined(roots)))
    return ex.as_dict()


@router.post("/classify", response_model=PredictionsAnswer)
def classify(body: ClassifyBody, who: Who, request: Request) -> dict[str, Any]:
    """Classify images given as vectors, or as files under the server's ASIF_SERVE_ROOT."""
    a, t = store(request), who.scope(body.tenant)
    if (body.vectors is None) == (body.paths is None):
        raise ConfigError("pass either vectors or paths, not both and not neither")
    if body.vectors is not None:
        bounded(request, len(body.vectors), "vectors")
        return predictions(a.classify(vectors=body.vectors, labels=body.labels, top=body.top, tenant=t))
    paths = body.paths or []
    bounded(request, len(paths), "paths")
    files = [image_path(request, who, a, t, p) for p in paths]
    return predictions(a.classify(images=files, labels=body.labels, top=body.top, tenant=t))


@router.post("/classify/image", response_model=PredictionsAnswer)
async def classify_image(
    who: Who, request: Request, images: Annotated[list[UploadFile], File(description="One or more image files.")],
    labels: Annotated[str, Form()], top: Annotated[int, Form()] = 5, tenant: Annotated[str | None, Form()] = None,
) -> Any:
    """Classify uploaded images (multipart/form-data)."""
    a, t = store(request), who.scope(tenant)
    pics = await read_images(request, images)
    return predictions(await run_in_threadpool(a.classify, images=pics, labels=labels, top=top, tenant=t))


@router.post("/search", response_model=SearchAnswer)
def search(body: SearchBody, who: Who, request: Request) -> dict[str, Any]:
    """Text-to-image search in a gallery, by texts or text vectors."""
    a, t = store(request), who.scope(body.tenant)
    bounded(request, len(body.texts or []) + len(body.vectors or []), "queries")
    res = a.search(text=body.texts, vector=body.vectors, gallery=body.gallery, top=body.top, tenant=t)
    return {"results": [[h.as_dict() for h in hs] for hs in res]}


@router.post("/explain")
def explain(body: ExplainBody, who: Who, request: Request, format: Literal["json", "html"] = "json") -> Any:
    """Why one image (a vector, or a file under ASIF_SERVE_ROOT) gets its label; ?format=html for the report."""
    a, t = store(request), who.scope(body.tenant)
    if (body.vector is None) == (body.path is None):
        raise ConfigError("pass either vector or path, not both and not neither")
    image = image_path(request, who, a, t, body.path) if body.path is not None else None
    ex = a.explain(image=image, vector=body.vector, labels=body.labels, label=body.label, top=body.top,
                   tenant=t, n_labels=body.n_labels)
    return explanation(request, who, a, ex, format, image, t, body.path)


@router.post("/explain/image")
async def explain_image(
    who: Who, request: Request, image: Annotated[UploadFile, File()], labels: Annotated[str, Form()],
    label: Annotated[str | None, Form()] = None, top: Annotated[int, Form()] = 10,
    n_labels: Annotated[int, Form()] = 1, tenant: Annotated[str | None, Form()] = None,
    format: Annotated[Literal["json", "html"], Query()] = "json",
) -> Any:
    """Explain an uploaded image; ?format=html for the report."""
    a, t = store(request), who.scope(tenant)
    pic = (await read_images(request, [image]))[0]
    ex = await run_in_threadpool(a.explain, image=pic, labels=labels, label=label, top=top, tenant=t,
                                 n_labels=n_labels)
    return explanation(request, who, a, ex, format, pic, t, image.filename)
