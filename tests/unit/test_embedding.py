"""The one path from inputs to vectors (asif_qdrant.embedding): batches, the embedding cache, on_error, progress,
cancellation, the request's pixel budget, and query inputs encoded outside the store's lock."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import IMG_DIM, TXT_DIM, small_settings
from fake_encoders import CharEncoder, PixelEncoder, shade
from PIL import Image

from asif_qdrant import Asif
from asif_qdrant.cancel import cancel_when
from asif_qdrant.embcache import EmbeddingCache
from asif_qdrant.embedding import Embedder, ImageLimits, Uploads, open_cache
from asif_qdrant.errors import CancelledError, ConfigError, ImageTooLargeError, InvalidInputError, NotFoundError

SPACES = {"image": (f"precomputed:img:{IMG_DIM}", IMG_DIM), "text": (f"precomputed:txt:{TXT_DIM}", TXT_DIM)}
RGB = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


class Counting:
    """An encoder that records each call's inputs."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, []  # type: list[list[Any]]

    def encode(self, items: Any, batch_size: int = 32) -> np.ndarray:
        self.calls.append(list(items))
        return self.inner.encode(items)


def _embedder(cache: EmbeddingCache | None = None, limits: ImageLimits | None = None) -> tuple[Embedder, dict]:
    encs = {"image": Counting(PixelEncoder()), "text": Counting(CharEncoder())}
    return Embedder(lambda m: encs[m], SPACES, limits or ImageLimits(), cache), encs


def _files(tmp_path: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        p = tmp_path / f"{i}.png"
        shade(list(RGB.values())[i % 3], rng, 10.0).save(p)
        out.append(p)
    return out


def test_images_in_batches_with_progress_match_one_by_one(tmp_path: Path) -> None:
    files = _files(tmp_path, 5)
    emb, encs = _embedder()
    done: list[int] = []
    enc = emb.images(files, batch=2, progress=done.append)
    assert [len(c) for c in encs["image"].calls] == [2, 2, 1] and done == [2, 2, 1]
    want = np.stack([PixelEncoder().encode([Image.open(f)])[0] for f in files])
    np.testing.assert_allclose(enc.vectors, want, atol=1e-6)
    assert enc.kept == [0, 1, 2, 3, 4] and enc.skipped == []


def test_keys_encode_each_image_once_and_the_cache_serves_the_next_run(tmp_path: Path) -> None:
    files = _files(tmp_path, 3)
    items, keys = [files[0], files[1], files[0], files[2]], [b"a", b"b", b"a", b"c"]
    with EmbeddingCache(tmp_path / "c.sqlite3") as cache:
        emb, encs = _embedder(cache)
        first = emb.images(items, keys=keys).vectors
        assert [len(c) for c in encs["image"].calls] == [3] and emb.encoded["image"] == 3
        np.testing.assert_array_equal(first[0], first[2])
        again, encs2 = _embedder(cache)
        np.testing.assert_array_equal(again.images(items, keys=keys).vectors, first)
        assert encs2["image"].calls == [] and again.cache_hits == 3  # a full hit calls no encoder
        texts = again.texts(["red", "blue", "red"])
        assert encs2["text"].calls == [["red", "blue"]]
        np.testing.assert_array_equal(texts[0], texts[2])
        third, encs3 = _embedder(cache)
        np.testing.assert_array_equal(third.texts(["red"]), texts[:1])
        assert encs3["text"].calls == [] and third.cache_hits == 1


def test_on_error_skip_lists_the_bad_image_and_fail_names_it(tmp_path: Path) -> None:
    files = _files(tmp_path, 3)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    emb, _ = _embedder()
    enc = emb.files([files[0], bad, files[1]], on_error="skip")
    assert enc.paths == [files[0], files[1]] and enc.vectors.shape == (2, IMG_DIM)
    assert enc.skipped[0][0] == str(bad) and "corrupt or not an image" in enc.skipped[0][1]
    with pytest.raises(InvalidInputError, match=r"broken\.jpg.*; or pass --on-error skip"):
        emb.files([files[0], bad], on_error="fail")
    with pytest.raises(ConfigError, match="on_error='maybe' is invalid"):
        emb.files(files, on_error="maybe")
    with pytest.raises(ConfigError, match="cache=1 is invalid"):
        open_cache(tmp_path, 1)  # type: ignore[arg-type]


def test_a_cancelled_request_encodes_nothing(tmp_path: Path) -> None:
    emb, encs = _embedder()
    with cancel_when(lambda: True), pytest.raises(CancelledError):
        emb.images(_files(tmp_path, 2))
    assert encs["image"].calls == []


def test_the_pixel_budget_counts_the_whole_call_only_when_asked(tmp_path: Path) -> None:
    files = _files(tmp_path, 3)  # 16 x 16 = 256 pixels each
    emb, _ = _embedder(limits=ImageLimits(max_pixels=1000, max_request_pixels=600))
    assert emb.images(files).vectors.shape == (3, IMG_DIM)
    with pytest.raises(ImageTooLargeError, match="add up to more than 600 pixels"):
        emb.images(files, budget=True)
    uploads = Uploads(ImageLimits(max_pixels=1000, max_request_pixels=600))
    data = files[0].read_bytes()
    image, digest = uploads.decode(data, "a.png")
    assert image.size == (16, 16) and len(digest) == 32
    uploads.decode(data, "b.png")
    with pytest.raises(ImageTooLargeError, match="at \"upload 'c.png'\""):
        uploads.decode(data, "c.png")


# -- query inputs are encoded outside the store's lock ----------------------------------------------------------
class Gate(PixelEncoder):
    """An image encoder that waits to be released, counting its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.started, self.release, self.calls = threading.Event(), threading.Event(), 0

    def encode(self, items: Any, batch_size: int = 64) -> np.ndarray:
        self.calls += 1
        self.started.set()
        assert self.release.wait(20)
        return super().encode(items, batch_size)


@pytest.fixture
def colours(tmp_path: Path) -> Any:
    rng = np.random.default_rng(3)
    a = Asif.open(tmp_path / "store", **small_settings(lock_timeout_s=1.0))
    pics = [shade(RGB[c], rng, 12.0) for c in RGB for _ in range(4)]
    caps = [f"{c} {c}" for c in RGB for _ in range(4)]
    a.set_encoder("text", CharEncoder())
    a.add_vectors(PixelEncoder().encode(pics), CharEncoder().encode(caps), captions=caps)
    a.define_labels("colours", list(RGB), templates="plain", k=4, p=1.0)
    yield a, [shade(RGB[c], rng, 12.0) for c in RGB]
    a.close()


def test_classify_encodes_outside_the_lock_so_an_edit_goes_on_meanwhile(colours: Any) -> None:
    a, queries = colours
    gate = Gate()
    a.set_encoder("image", gate)
    out: list[Any] = []
    reader = threading.Thread(target=lambda: out.append(a.classify(images=queries, labels="colours", top=3)))
    reader.start()
    assert gate.started.wait(10)
    # the encoder is running: an edit of the shared anchors takes the store's exclusive lock (lock_timeout_s=1 would
    # raise StoreBusyError if the read held the shared lock while encoding)
    extra = [shade(RGB["red"], np.random.default_rng(9), 12.0)]
    a.add_vectors(PixelEncoder().encode(extra), CharEncoder().encode(["red"]), captions=["red"])
    gate.release.set()
    reader.join(20)
    want = a.classify(vectors=PixelEncoder().encode(queries), labels="colours", top=3)  # after the edit
    assert [p.as_dict() for p in out[0]] == [p.as_dict() for p in want]
    assert [p.label for p in want] == ["red", "green", "blue"] and gate.calls == 1


def test_a_read_retried_for_a_repair_encodes_once_and_checks_come_first(colours: Any, tmp_path: Path) -> None:
    a, queries = colours
    gate = Gate()
    gate.release.set()
    a.set_encoder("image", gate)
    # the tenant's own anchors: its first classify makes a tenant copy of the shared label set (WriteNeeded, run
    # again under the exclusive lock), then needs its inputs encoded (EncodeFirst, run again): one encoding
    a.add_vectors(PixelEncoder().encode(queries[:1]), CharEncoder().encode(["red"]), captions=["red"], tenant="acme")
    got = a.classify(images=queries, labels="colours", tenant="acme")
    assert gate.calls == 1
    want = a.classify(vectors=PixelEncoder().encode(queries), labels="colours", tenant="acme")
    assert [p.as_dict() for p in got] == [p.as_dict() for p in want]
    with pytest.raises(NotFoundError, match="nope"):  # the label set is checked before any image is read
        a.classify(images=[tmp_path / "missing.png"], labels="nope")
    ex = a.explain(image=queries[2], labels="colours", top=2)
    assert ex.predicted == "blue" and gate.calls == 2
    # inside an edit the lock cannot be left: the inputs are encoded there, once
    inside = a.exclusive(lambda: a.classify(images=queries, labels="colours", tenant="acme"))
    assert [p.as_dict() for p in inside] == [p.as_dict() for p in want] and gate.calls == 3
    assert a.explain(vector=PixelEncoder().encode(queries[2:]), labels="colours", top=2).as_dict() == ex.as_dict()
