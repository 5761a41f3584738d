"""sentence-transformers text encoders: packaged, local or hub models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from asif_qdrant.encoders.base import DEFAULT_BATCH_SIZE, EncoderFingerprint, Modality, check_batch_size, check_texts
from asif_qdrant.encoders.device import resolve_device
from asif_qdrant.encoders.weights import (
    DEFAULT_MODEL_CACHE,
    MINILM,
    MPNET,
    WeightPackage,
    find_package_file,
    missing_weights_error,
    mpnet_part_files,
    unpack_split_zip,
)
from asif_qdrant.errors import EncoderError

# Known models, by the name after "st:": their packages and hub ids.
PACKAGES: dict[str, WeightPackage] = {"all-MiniLM-L6-v2": MINILM, "all-mpnet-base-v2": MPNET}
MPNET_CACHE_NAME = "all-mpnet-base-v2-0.0.1"


def packaged_folder(model: str, cache_dir: Path | None) -> tuple[Path | None, str | None]:
    """Return the local model folder that an installed package provides, or (None, why not)."""
    if model == "all-MiniLM-L6-v2":
        modules = find_package_file(MINILM.dists[0], "model/modules.json")
        return (modules.parent, None) if modules else (None, f"package {MINILM.label} is not installed")
    if model == "all-mpnet-base-v2":
        parts, missing = mpnet_part_files()
        if missing:
            return None, f"packages {', '.join(missing)} are not installed"
        root = (cache_dir or DEFAULT_MODEL_CACHE).expanduser()
        return unpack_split_zip(parts, root / MPNET_CACHE_NAME), None
    return None, None


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or Path(name).expanduser().exists()


def load_sentence_transformer(
    model: str, full_name: str, checkpoint: Path | None, cache_dir: Path | None, device: torch.device
) -> tuple[SentenceTransformer, str, Path | None]:
    """Load with weights from (a) checkpoint folder, (b) a package, (c) a local path or the hub.

    Returns the model in eval mode, where its weights came from, and its local folder (None: hub).
    """
    if checkpoint is not None:
        ckpt = Path(checkpoint).expanduser()
        if not ckpt.is_dir():
            raise EncoderError(
                f"checkpoint {str(ckpt)!r} for {full_name!r} is not a folder: pass the folder of a "
                "sentence-transformers model (the one holding modules.json)"
            )
        return _load(ckpt, full_name, device), f"checkpoint {ckpt}", ckpt
    folder, why_not = packaged_folder(model, cache_dir)
    if folder is not None:
        return _load(folder, full_name, device), f"package {PACKAGES[model].label}", folder
    if _looks_like_path(model):
        path = Path(model).expanduser()
        if not path.is_dir():
            raise EncoderError(
                f"model folder {model!r} (from {full_name!r}) does not exist: pass the folder of a "
                "sentence-transformers model, or a model name from the Hugging Face Hub"
            )
        return _load(path, full_name, device), f"folder {path}", path
    try:
        st = SentenceTransformer(model, device=str(device))
    except Exception as exc:  # hub, network and cache errors come in many types
        problems = [why_not] if why_not else []
        problems.append(f"hub download failed ({type(exc).__name__}: {str(exc)[:160]})")
        hub_id = model if "/" in model else f"sentence-transformers/{model}"
        raise missing_weights_error(
            full_name, PACKAGES.get(model), problems, hub_id, "a sentence-transformers model folder"
        ) from exc
    return st.eval(), "hub", None


def _load(folder: Path, full_name: str, device: torch.device) -> SentenceTransformer:
    try:
        return SentenceTransformer(str(folder), device=str(device)).eval()
    except Exception as exc:  # a broken folder fails in many ways
        raise EncoderError(
            f"cannot load {full_name!r} from folder {str(folder)!r} "
            f"({type(exc).__name__}: {str(exc)[:160]}): "
            "check that it is a complete sentence-transformers model folder"
        ) from exc


class SentenceTransformerEncoder:
    """Text encoder over a sentence-transformers model; rows are L2-normalised float32."""

    modality: Modality = "text"

    def __init__(
        self,
        model: str,
        *,
        checkpoint: Path | None = None,
        cache_dir: Path | None = None,
        device: str | None = None,
    ) -> None:
        self.model_name = model
        self.name = f"st:{model}"
        self.device = resolve_device(device)
        self.model, self.weights_source, self.model_path = load_sentence_transformer(
            model, self.name, checkpoint, cache_dir, self.device
        )
        dim = self.model.get_embedding_dimension()
        if not dim:
            raise EncoderError(f"{self.name!r} does not report an embedding dimension: use a sentence embedding model")
        self.dim: int = int(dim)

    @property
    def fingerprint(self) -> EncoderFingerprint:
        return EncoderFingerprint(self.name, self.dim)

    def __repr__(self) -> str:
        return f"SentenceTransformerEncoder({self.name!r}, dim={self.dim}, weights={self.weights_source!r})"

    def encode(self, items: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Encode texts into float32 unit rows of shape (n, dim)."""
        texts = check_texts(items)
        check_batch_size(batch_size)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        with torch.inference_mode():
            vecs = self.model.encode(
                texts,
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.asarray(vecs, dtype=np.float32)
