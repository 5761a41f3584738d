"""The optional parts of the distribution and the packages each one brings (pyproject.toml's extras).

``pip install asif-qdrant`` is the core: a user who brings their own vectors (precomputed encoders) needs nothing
else. The extras: ``encoders`` (torch, timm, sentence-transformers and the bundled weights), ``serve`` (FastAPI,
uvicorn, python-multipart, httpx), ``eval`` (matplotlib for the plots), ``all`` (the three). Heavy imports happen
only inside the adapters that need them; a missing one raises MissingExtraError naming the command that fixes it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

EXTRAS: dict[str, tuple[str, ...]] = {
    "encoders": ("torch", "torchvision", "timm", "sentence_transformers"),
    "serve": ("fastapi", "uvicorn", "multipart", "httpx", "starlette"),
    "eval": ("matplotlib",),
}


def install_hint(extra: str) -> str:
    """The command that installs ``extra``."""
    return f"pip install 'asif-qdrant[{extra}]'"


def missing_extra(e: ImportError, extra: str, what: str) -> MissingExtraError:
    """The error for ``e`` (an import that failed while loading ``what``): names the extra to install."""
    name = getattr(e, "name", None) or str(e)
    return MissingExtraError(
        f"{what} needs the package {name!r}, which is not installed: {install_hint(extra)} (or {install_hint('all')})"
    )


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` (a package of ``extra``) for ``what``, or raise MissingExtraError naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise missing_extra(e, extra, what) from e


__all__ = ["EXTRAS", "install_hint", "missing_extra", "require"]
