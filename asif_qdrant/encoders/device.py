"""Torch device selection for the adapters (imports torch; only adapters import this module)."""

from __future__ import annotations

import torch

from asif_qdrant.errors import EncoderError


def resolve_device(device: str | None) -> torch.device:
    """Return the torch device (default cpu); refuse cuda when it is not available."""
    dev = (device or "cpu").strip()
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise EncoderError(f"device {dev!r} was asked for but CUDA is not available here: use device='cpu'")
    try:
        return torch.device(dev)
    except RuntimeError as exc:
        raise EncoderError(f"device {dev!r} is not a torch device: use 'cpu' or 'cuda'") from exc
