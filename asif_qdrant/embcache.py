"""An on-disk cache of embeddings, keyed by encoder and content hash (sqlite3, float32 blobs).

A re-run of an ingest, or the same data ingested for a second tenant, finds its embeddings here
instead of encoding again. Keys are content hashes (for example the sha256 of an image file's bytes,
or of a caption's UTF-8 text); the encoder's name and dimension namespace them, so a store that
changes encoder never reads another encoder's vectors.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import ConfigError

CACHE_FILE = "embeddings.sqlite3"
_CHUNK = 500  # keys per SELECT ... IN (...), below sqlite's variable limit

# A rowid table with 16 KiB pages keeps a 1280-d float32 blob (5 KiB) on one page: about 1.1x the raw size.
_PAGE_SIZE = 16384
_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    encoder TEXT NOT NULL,
    key BLOB NOT NULL,
    vector BLOB NOT NULL,
    UNIQUE (encoder, key)
)
"""


def encoder_namespace(name: str, dim: int) -> str:
    """The cache namespace of an encoder: its name and dimension."""
    return f"{name}#{int(dim)}"


class EmbeddingCache:
    """Embeddings by (encoder, content key), in one sqlite file. Use as a context manager or call close()."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0)
            self._db.execute(f"PRAGMA page_size={_PAGE_SIZE}")  # takes effect only when the file is new
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._db.commit()
        except sqlite3.Error as e:
            raise ConfigError(
                f"cannot open the embedding cache {str(self.path)!r} ({e}): set ASIF_CACHE_DIR to a writable "
                "folder, or delete the file if it is corrupt (it only holds cached embeddings)"
            ) from e

    @classmethod
    def in_folder(cls, folder: str | Path) -> EmbeddingCache:
        """The cache file inside ``folder`` (for a store: ``settings.resolved_cache_dir``)."""
        return cls(Path(folder).expanduser() / CACHE_FILE)

    def get_many(self, encoder: str, dim: int, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors among ``keys`` (missing keys are absent from the result)."""
        ns = encoder_namespace(encoder, dim)
        unique = list(dict.fromkeys(bytes(k) for k in keys))
        found: dict[bytes, np.ndarray] = {}
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, vector FROM embeddings WHERE encoder = ? AND key IN ({marks})", [ns, *chunk]
            )
            for key, blob in rows:
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape[0] == dim:  # a truncated blob is treated as a miss and overwritten later
                    found[bytes(key)] = vec.copy()
        return found

    def put_many(
        self, encoder: str, dim: int, items: Mapping[bytes, np.ndarray] | Iterable[tuple[bytes, np.ndarray]]
    ) -> None:
        """Store vectors (each of length ``dim``) under their keys; existing keys are overwritten."""
        ns = encoder_namespace(encoder, dim)
        pairs = items.items() if isinstance(items, Mapping) else items
        rows = []
        for key, vec in pairs:
            arr = np.ascontiguousarray(vec, dtype=np.float32).reshape(-1)
            if arr.shape[0] != dim:
                raise ConfigError(f"cannot cache a vector of length {arr.shape[0]} for {ns!r}: expected {dim}")
            rows.append((ns, bytes(key), arr.tobytes()))
        if rows:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows)

    def count(self, encoder: str | None = None, dim: int | None = None) -> int:
        """Cached vectors: all of them, those of one encoder (any dim), or of one encoder and dim."""
        if encoder is None:
            row = self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()
        elif dim is None:
            prefix = f"{encoder}#"
            row = self._db.execute(
                "SELECT COUNT(*) FROM embeddings WHERE substr(encoder, 1, ?) = ?", [len(prefix), prefix]
            ).fetchone()
        else:
            ns = encoder_namespace(encoder, dim)
            row = self._db.execute("SELECT COUNT(*) FROM embeddings WHERE encoder = ?", [ns]).fetchone()
        return int(row[0])

    def clear(self) -> None:
        with self._db:
            self._db.execute("DELETE FROM embeddings")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
