"""A live `asif serve` app for the end-to-end tests: uvicorn in a thread on a free port of 127.0.0.1 only."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from asif_qdrant.serve import create_app


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
