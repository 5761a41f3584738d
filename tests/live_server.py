"""A live `asif serve` app for the end-to-end tests: uvicorn in a thread on a free port of 127.0.0.1 only."""

from __future__ import annotations

import io
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from conftest import small_settings
from fake_encoders import CharEncoder, PixelEncoder
from PIL import Image

from asif_qdrant import Asif
from asif_qdrant.serve import create_app


def png(colour: tuple[int, int, int], size: int = 16) -> bytes:
    """A square PNG of one colour (the fake image encoder reads the colour)."""
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, "PNG")
    return buf.getvalue()


def colour_store(path: Path, base: tuple[np.ndarray, np.ndarray], prompts: np.ndarray, gallery: np.ndarray,
                 **settings: Any) -> Asif:
    """The store the server tests serve: the fake colour encoders, 30 shared pairs, the label set ``colours``
    (red, green, blue) and the gallery ``pics``."""
    a = Asif.open(path, **small_settings(**settings))
    a.set_encoder("image", PixelEncoder())  # type: ignore[arg-type]
    a.set_encoder("text", CharEncoder())  # type: ignore[arg-type]
    a.add_vectors(*base, captions=[f"shared {i}" for i in range(len(base[0]))])
    a.define_labels("colours", ["red", "green", "blue"], templates="plain", prompt_vectors=prompts, k=8)
    a.add_gallery("pics", vectors=gallery, payloads=[{"image_ref": f"g{i}.jpg"} for i in range(len(gallery))], k=8)
    return a


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """uvicorn in a thread on a free port of 127.0.0.1, serving ``asif`` (which the test closes)."""

    def __init__(self, asif: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(create_app(asif), host="127.0.0.1", port=self.port, log_level="warning",
                                access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
