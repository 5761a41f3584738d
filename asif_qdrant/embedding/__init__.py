"""The one path from inputs (files, folders, uploads, PIL images, arrays) to vectors: decoding with limits, batching,
the embedding cache, progress, ``on_error``, cancellation, and encoding outside the store's lock.

- :mod:`.decode`: each image checked from its header against the pixel limits (``ASIF_MAX_IMAGE_PIXELS``,
  ``ASIF_MAX_REQUEST_PIXELS``) before it is decoded, then decoded shrunk (the encoders' ``load_image`` too).
- :mod:`.embedder`: :class:`Embedder`, batches of images and texts through a store's encoders and its embedding
  cache, with a progress callback, ``on_error`` and a cancellation checkpoint before each batch.
- :mod:`.inputs`: a query's inputs (raw or vectors) to its vectors, raw ones encoded outside the lock.

The facade (``Asif.embedder``, ``encode_images``, ``input_vectors``), ``teach`` and ``add_pairs``, ingest, the CLI,
the server's uploads and the evaluation tools all encode through here. Nothing here takes the store's lock.
"""

from __future__ import annotations

from .decode import (
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_REQUEST_PIXELS,
    SHRINK_SIDE,
    ImageLimits,
    PixelBudget,
    Uploads,
    decode_bytes,
    decode_file,
    decode_image,
    decode_opened,
)
from .embedder import (
    ENCODE_BATCH,
    CacheArg,
    Embedder,
    Encoded,
    EncodedImages,
    OnError,
    Progress,
    check_on_error,
    open_cache,
    progress_bar,
)
from .inputs import EncodeFirst, input_vectors, outside_the_lock, reading

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MAX_REQUEST_PIXELS",
    "ENCODE_BATCH",
    "SHRINK_SIDE",
    "CacheArg",
    "EncodeFirst",
    "Embedder",
    "Encoded",
    "EncodedImages",
    "ImageLimits",
    "OnError",
    "PixelBudget",
    "Progress",
    "Uploads",
    "check_on_error",
    "decode_bytes",
    "decode_file",
    "decode_image",
    "decode_opened",
    "input_vectors",
    "open_cache",
    "outside_the_lock",
    "progress_bar",
    "reading",
]
