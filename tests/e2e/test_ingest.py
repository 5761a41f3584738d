"""Ingest: readers, one encoding per image, idempotent and resumable runs, bad rows, the embedding cache,
add_pairs and bring-your-own vectors. Real tiny encoders (lite0 + MiniLM) on a few Flickr8k images."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import IMG_DIM, SHARED_DATA, TXT_DIM, random_pairs, small_settings
from PIL import Image

from asif_qdrant import Asif
from asif_qdrant.embcache import EmbeddingCache
from asif_qdrant.embedding import embedder as embedder_mod
from asif_qdrant.encoders import create_encoder
from asif_qdrant.errors import ConfigError, FingerprintMismatchError, InvalidInputError, NotFoundError
from asif_qdrant.ingest import add_pairs, ingest, ingest_vectors, read_source

FLICKR = SHARED_DATA / "flickr8k"
N_IMAGES, CAPS_PER_IMAGE = 6, 3
ENGINES = ["edge", "local"]

needs_flickr = pytest.mark.skipif(
    not (FLICKR / "captions.tsv").is_file(),
    reason=f"Flickr8k sample data not found at {FLICKR} (shared data is needed for the real-encoder tests)",
)


# ---------------------------------------------------------------- data and stores


def _flickr_sample() -> dict[str, list[str]]:
    """The first CAPS_PER_IMAGE captions of the first N_IMAGES images of Flickr8k, by file name."""
    out: dict[str, list[str]] = {}
    with open(FLICKR / "captions.tsv", newline="") as f:
        for rec in csv.DictReader(f, delimiter="\t"):
            if rec["image"] not in out and len(out) == N_IMAGES:
                break
            caps = out.setdefault(rec["image"], [])
            if len(caps) < CAPS_PER_IMAGE:
                caps.append(rec["caption"].strip())
    return out


@pytest.fixture(scope="module")
def sample() -> dict[str, list[str]]:
    if not (FLICKR / "captions.tsv").is_file():
        pytest.skip(f"Flickr8k sample data not found at {FLICKR}")
    return _flickr_sample()


@pytest.fixture
def dataset(tmp_path: Path, sample: dict[str, list[str]]) -> Path:
    """A folder with images/ (6 Flickr photos copied at test time) and captions.tsv (18 rows)."""
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    for name in sample:
        shutil.copy(FLICKR / "images" / name, root / "images" / name)
    _write_tsv(root / "captions.tsv", ["image", "caption"], [[n, c] for n, caps in sample.items() for c in caps])
    return root


def _write_tsv(path: Path, header: list[str], rows: list[list[str]], delimiter: str = "\t") -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def encoders() -> dict[str, Any]:
    """lite0 and MiniLM, loaded once for the module and shared by every store."""
    if not (FLICKR / "captions.tsv").is_file():
        pytest.skip(f"Flickr8k sample data not found at {FLICKR}")
    return {"image": create_encoder("timm:tf_efficientnet_lite0"), "text": create_encoder("st:all-MiniLM-L6-v2")}


def open_real(kind: str, tmp_path: Path, encoders: dict[str, Any], name: str = "s") -> Asif:
    """A store with the default encoders, on Edge or local mode, its cache under tmp_path."""
    cache = tmp_path / f"{name}-cache"
    a = Asif.open(tmp_path / name, cache_dir=cache) if kind == "edge" else Asif.open(url=":memory:", cache_dir=cache)
    for modality, enc in encoders.items():  # share the loaded models instead of loading them per store
        a.set_encoder(modality, enc)
    return a


@pytest.fixture(params=ENGINES)
def real(request: pytest.FixtureRequest, tmp_path: Path, encoders: dict[str, Any]) -> Iterator[Asif]:
    a = open_real(str(request.param), tmp_path, encoders)
    yield a
    a.close()


def snapshot(a: Asif) -> list[tuple[int, str, str, str, np.ndarray, np.ndarray]]:
    """Every anchor as (id, caption, tenant, image_ref, image vector, text vector), sorted by id."""
    recs = a.engine.scroll(a.anchors.collection, with_payload=True, with_vectors=["image", "text"])
    out = [
        (r.id, r.payload["caption"], r.payload["tenant"], r.payload["image_ref"], r.vectors["image"], r.vectors["text"])
        for r in recs
    ]
    return sorted(out, key=lambda t: t[0])


def assert_same_store(a: Asif, b: Asif) -> None:
    sa, sb = snapshot(a), snapshot(b)
    assert [t[:4] for t in sa] == [t[:4] for t in sb]
    np.testing.assert_allclose(np.stack([t[4] for t in sa]), np.stack([t[4] for t in sb]), atol=1e-5)
    np.testing.assert_allclose(np.stack([t[5] for t in sa]), np.stack([t[5] for t in sb]), atol=1e-5)


# ---------------------------------------------------------------- readers (no encoders)


def _rows_as_tuples(source: Path, **kw: Any) -> list[tuple[Any, ...]]:
    return [(r.line, r.image, r.image_ref, r.caption, r.tenant, r.payload, r.error) for r in read_source(source, **kw)]


def test_tsv_csv_jsonl_read_the_same(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"x")
    (tmp_path / "b.jpg").write_bytes(b"y")
    absolute = tmp_path / "elsewhere.jpg"
    absolute.write_bytes(b"z")
    recs = [
        {"image": "a.jpg", "caption": "a dog ", "tenant": "", "split": "train"},
        {"image": "b.jpg", "caption": "a cat", "tenant": "acme", "split": "test"},
        {"image": str(absolute), "caption": "a bird", "tenant": "", "split": "val"},
    ]
    header = ["image", "caption", "tenant", "split"]
    _write_tsv(tmp_path / "c.tsv", header, [[r[h] for h in header] for r in recs])
    _write_tsv(tmp_path / "c.csv", header, [[r[h] for h in header] for r in recs], delimiter=",")
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n\n")
    want = [
        (2, (tmp_path / "images" / "a.jpg").resolve(), "a.jpg", "a dog", None, {"split": "train"}, None),
        (3, (tmp_path / "b.jpg").resolve(), "b.jpg", "a cat", "acme", {"split": "test"}, None),
        (4, absolute, str(absolute), "a bird", None, {"split": "val"}, None),
    ]
    assert _rows_as_tuples(tmp_path / "c.tsv") == want
    assert _rows_as_tuples(tmp_path / "c.csv") == want
    assert _rows_as_tuples(tmp_path / "c.jsonl") == [(ln - 1, *rest) for ln, *rest in want]
    # a folder source finds captions.* inside it; captions_file names another one
    shutil.copy(tmp_path / "c.csv", tmp_path / "captions.csv")
    assert _rows_as_tuples(tmp_path) == want
    assert _rows_as_tuples(tmp_path, captions_file="c.tsv") == want


def test_reader_bad_rows_are_yielded_with_their_line(tmp_path: Path) -> None:
    p = tmp_path / "c.tsv"
    p.write_text("image\tcaption\nx.jpg\tfine\nonly-one-field\n\n\tno image\ny.jpg\tok\n")
    rows = list(read_source(p))
    assert [(r.line, r.error is None) for r in rows] == [(2, True), (3, False), (5, False), (6, True)]
    assert rows[1].error == "the row has 1 fields but the header has 2 (image, caption)"
    assert rows[2].error == "the row has no image path"
    j = tmp_path / "c.jsonl"
    j.write_text('{"image": "x.jpg", "caption": "a"}\n{not json\n[1, 2]\n{"image": "y.jpg", "caption": 5}\n')
    jr = list(read_source(j))
    assert [r.line for r in jr if r.error] == [2, 3, 4]
    assert str(jr[1].error).startswith("the row is not valid JSON") and "is a JSON list" in str(jr[2].error)
    assert jr[3].error == "the caption is not a string (got int)"


def test_reader_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    bad_cols = _write_tsv(tmp_path / "c.tsv", ["file", "text"], [["a.jpg", "a dog"]])
    with pytest.raises(InvalidInputError, match=r"c\.tsv.*columns \['file', 'text'\].*lacks \['image', 'caption'\]"):
        list(read_source(bad_cols))
    txt = tmp_path / "c.txt"
    txt.write_text("a.jpg a dog\n")
    with pytest.raises(InvalidInputError, match=r"c\.txt.*unknown format.*'\.txt'.*\.tsv, \.csv or \.jsonl"):
        list(read_source(txt))
    reserved = _write_tsv(tmp_path / "r.csv", ["image", "caption", "image_ref"], [["a", "b", "c"]], delimiter=",")
    with pytest.raises(InvalidInputError, match=r"reserved column\(s\) \['image_ref'\]"):
        list(read_source(reserved))
    empty = tmp_path / "e"
    empty.mkdir()
    with pytest.raises(NotFoundError, match=r"holds no captions file.*captions\.tsv"):
        list(read_source(empty))
    with pytest.raises(NotFoundError, match="does not exist"):
        list(read_source(tmp_path / "missing"))
    with pytest.raises(NotFoundError, match=r"nope\.tsv"):
        list(read_source(tmp_path, captions_file="nope.tsv"))


def test_embedding_cache_roundtrip(tmp_path: Path) -> None:
    with EmbeddingCache.in_folder(tmp_path) as c:
        v = np.arange(4, dtype=np.float32)
        c.put_many("enc", 4, {b"k1": v, b"k2": v + 1})
        c.put_many("enc", 3, {b"k1": v[:3]})
        got = c.get_many("enc", 4, [b"k1", b"k2", b"k3", b"k1"])
        assert sorted(got) == [b"k1", b"k2"]
        np.testing.assert_array_equal(got[b"k2"], v + 1)
        assert c.get_many("other", 4, [b"k1"]) == {}
        assert (c.count(), c.count("enc"), c.count("enc", 4)) == (3, 3, 2)
        with pytest.raises(ConfigError, match="length 2"):
            c.put_many("enc", 4, {b"k": v[:2]})
    with EmbeddingCache.in_folder(tmp_path) as c:  # persisted
        np.testing.assert_array_equal(c.get_many("enc", 3, [b"k1"])[b"k1"], v[:3])


# ---------------------------------------------------------------- ingest with the real encoders


@needs_flickr
@pytest.mark.data
@pytest.mark.slow
def test_ingest_shares_image_encodings_and_stores_encoder_outputs(
    real: Asif, dataset: Path, sample: dict[str, list[str]], encoders: dict[str, Any]
) -> None:
    rep = ingest(real, dataset, progress=False, batch_size=4)
    n = N_IMAGES * CAPS_PER_IMAGE
    assert (rep.rows, rep.added, rep.duplicates, rep.skipped) == (n, n, 0, 0)
    assert (rep.images, rep.images_encoded, rep.captions_encoded, rep.cache_hits) == (N_IMAGES, N_IMAGES, n, 0)
    assert real.count() == n and rep.anchors_per_s > 0
    snap = snapshot(real)
    names = list(sample)
    assert sorted((t[3], t[1]) for t in snap) == sorted((nm, c) for nm in names for c in sample[nm])
    assert {t[2] for t in snap} == {"_shared"}
    # stored vectors are the encoders' outputs for that image and caption
    img = encoders["image"].encode([dataset / "images" / nm for nm in names])
    for _, caption, _, ref, ivec, tvec in snap:
        np.testing.assert_allclose(ivec, img[names.index(ref)], atol=1e-5)
        np.testing.assert_allclose(tvec, encoders["text"].encode([caption])[0], atol=1e-5)
    d = rep.as_dict()
    assert d["added"] == n and d["images_encoded"] == N_IMAGES and "images_per_s" in d
    assert f"{n} added" in rep.summary()


@needs_flickr
@pytest.mark.data
@pytest.mark.slow
def test_rerun_writes_nothing_and_decodes_nothing(
    real: Asif, dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ingest(real, dataset, progress=False)
    before = snapshot(real)

    def no_decoding(*_: Any) -> None:
        raise AssertionError("a re-run must not decode images whose anchors are stored")

    monkeypatch.setattr(embedder_mod, "decode_image", no_decoding)  # where the one path decodes every image
    again = ingest(real, dataset, progress=False)
    assert (again.added, again.duplicates, again.images_encoded, again.captions_encoded) == (0, first.rows, 0, 0)
    assert [t[:4] for t in snapshot(real)] == [t[:4] for t in before]
    assert real.stats()["_shared"]["revision"] == 1


@needs_flickr
@pytest.mark.data
@pytest.mark.slow
def test_second_tenant_comes_from_the_cache(real: Asif, dataset: Path) -> None:
    n = N_IMAGES * CAPS_PER_IMAGE
    ingest(real, dataset, progress=False)
    rep = ingest(real, dataset, tenant="acme", progress=False)
    assert (rep.added, rep.images_encoded, rep.captions_encoded, rep.cache_hits) == (n, 0, 0, N_IMAGES + n)
    assert (real.count(), real.count("acme")) == (n, n)
    shared = {t[1]: t[4:] for t in snapshot(real) if t[2] == "_shared"}
    for t in snapshot(real):
        if t[2] == "acme":
            np.testing.assert_array_equal(t[4], shared[t[1]][0])


@needs_flickr
@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("kind", ENGINES)
def test_killed_half_way_then_rerun_equals_clean_run(
    kind: str, tmp_path: Path, dataset: Path, encoders: dict[str, Any]
) -> None:
    with open_real(kind, tmp_path, encoders, "clean") as clean:
        ingest(clean, dataset, progress=False, batch_size=2)

        class Killed(Exception):
            pass

        def kill(_: Any) -> None:
            raise Killed

        with open_real(kind, tmp_path, encoders, "resumed") as resumed:
            # content ids are keyed with a per-store secret (no cross-tenant oracle): give both stores the same key
            # so that their ids can be compared
            from asif_qdrant.anchors import ID_KEY_RECORD

            resumed.meta.put(ID_KEY_RECORD, clean.meta.get(ID_KEY_RECORD))
            with pytest.raises(Killed):
                ingest(resumed, dataset, progress=False, batch_size=2, on_batch=kill)
            assert resumed.count() == 2 * CAPS_PER_IMAGE  # the first batch: 2 images and their captions
            ingest(resumed, dataset, progress=False, batch_size=2, limit=10)  # stopped again, part-way
            rep = ingest(resumed, dataset, progress=False, batch_size=2)
            assert rep.duplicates == 10 and rep.added == N_IMAGES * CAPS_PER_IMAGE - 10
            assert_same_store(resumed, clean)


@needs_flickr
@pytest.mark.data
@pytest.mark.slow
def test_bad_rows_are_skipped_and_reported(real: Asif, dataset: Path, sample: dict[str, list[str]]) -> None:
    names = list(sample)
    (dataset / "images" / "corrupt.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    _write_tsv(
        dataset / "captions.tsv",
        ["image", "caption", "tenant", "source"],
        [
            [names[0], "a good caption", "", "x"],      # line 2
            ["missing.jpg", "no such file", "", "x"],   # line 3
            ["corrupt.jpg", "broken bytes", "", "x"],   # line 4
            [names[1], "  ", "", "x"],                  # line 5: empty caption
            [names[1], "another good one", "acme", "y"],  # line 6
            [names[0], "a good caption", "", "x"],      # line 7: exact duplicate of line 2
            [names[2], "bad tenant", "no/slash", "x"],  # line 8
        ],
    )
    rep = ingest(real, dataset, progress=False)
    assert (rep.rows, rep.added, rep.duplicates, rep.skipped) == (7, 2, 1, 4)
    assert [ln for ln, _ in rep.bad_rows] == [3, 4, 5, 8]
    reasons = dict(rep.bad_rows)
    assert "missing.jpg" in reasons[3] and "does not exist" in reasons[3]
    assert "corrupt.jpg" in reasons[4] and "corrupt or not an image" in reasons[4]
    assert reasons[5] == "the caption is empty"
    assert "tenant name 'no/slash'" in reasons[8]
    assert "line 3:" in rep.summary()
    assert (real.count(), real.count("acme")) == (1, 1)
    payloads = {t[1]: t[2] for t in snapshot(real)}
    assert payloads == {"a good caption": "_shared", "another good one": "acme"}
    rec = real.engine.scroll(real.anchors.collection, with_payload=True)
    assert sorted(r.payload["source"] for r in rec) == ["x", "y"]


@needs_flickr
@pytest.mark.data
@pytest.mark.slow
def test_on_error_fail_writes_nothing_of_the_bad_batch(real: Asif, dataset: Path, sample: dict[str, list[str]]) -> None:
    names = list(sample)
    (dataset / "images" / "corrupt.jpg").write_bytes(b"GIF89a broken")
    rows = [[names[0], "one"], [names[1], "two"], [names[2], "three"], ["corrupt.jpg", "four"]]
    _write_tsv(dataset / "captions.tsv", ["image", "caption"], rows)
    with pytest.raises(InvalidInputError, match=r"line 5: image file .*corrupt\.jpg.*lines 4-5.*on_error='skip'"):
        ingest(real, dataset, progress=False, batch_size=2, on_error="fail")
    assert real.count() == 2  # the first batch (lines 2-3) only
    _write_tsv(dataset / "captions.tsv", ["image", "caption"], [[names[3], "five"], [names[4], ""]])
    with pytest.raises(InvalidInputError, match=r"line 3: the caption is empty. Nothing was written"):
        ingest(real, dataset, progress=False, on_error="fail")
    assert real.count() == 2


def test_ingest_option_errors(tmp_path: Path) -> None:
    with Asif.open(tmp_path / "s", **small_settings()) as a:
        with pytest.raises(ConfigError, match="on_error='ignore'"):
            ingest(a, tmp_path, on_error="ignore")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="batch_size=0"):
            ingest(a, tmp_path, batch_size=0)
        with pytest.raises(ConfigError, match="tenant name 'a b'"):
            ingest(a, tmp_path, tenant="a b")


@needs_flickr
@pytest.mark.data
@pytest.mark.slow
def test_add_pairs_encodes_each_image_once(real: Asif, dataset: Path, encoders: dict[str, Any]) -> None:
    paths = sorted((dataset / "images").glob("*.jpg"))[:2]
    pil = Image.open(paths[0]).convert("RGB")
    calls: list[int] = []
    enc = encoders["image"]

    class Counting:
        name, dim, modality = enc.name, enc.dim, enc.modality

        def encode(self, items: list[Any], batch_size: int = 32) -> np.ndarray:
            calls.append(len(items))
            return enc.encode(items, batch_size=batch_size)

    real.set_encoder("image", Counting())  # type: ignore[arg-type]
    images = [paths[0], str(paths[0]), paths[1], pil]
    caps = ["a first caption", "a second caption", "a third caption", "the pil image"]
    ids = add_pairs(real, images, caps, payloads=[{"i": i} for i in range(4)]).ids
    assert len(set(ids)) == 4 and real.count() == 4
    assert calls == [3]  # paths[0] given twice, encoded once; the PIL image has its own key
    assert add_pairs(real, images, caps, payloads=[{"i": i} for i in range(4)]).ids == ids
    assert calls == [3] and real.count() == 4  # second call: all from the cache, nothing new
    recs = {r.id: r for r in real.engine.retrieve(real.anchors.collection, ids, with_vectors=["image"])}
    assert recs[ids[1]].payload["image_ref"] == str(paths[0]) and recs[ids[3]].payload["image_ref"] is None
    np.testing.assert_allclose(recs[ids[3]].vectors["image"], enc.encode([pil])[0], atol=1e-5)
    with pytest.raises(InvalidInputError, match="got 1 images and 2 captions"):
        add_pairs(real, [paths[0]], ["a", "b"])
    with pytest.raises(InvalidInputError, match="caption 0 is empty"):
        add_pairs(real, [paths[0]], [" "])
    with pytest.raises(InvalidInputError, match="nope.jpg"):
        add_pairs(real, [dataset / "nope.jpg"], ["x"])


# ---------------------------------------------------------------- bring your own vectors (no encoders)


@pytest.fixture(params=ENGINES)
def small(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Asif]:
    opts = small_settings()
    a = Asif.open(tmp_path / "s", **opts) if request.param == "edge" else Asif.open(url=":memory:", **opts)
    yield a
    a.close()


def test_ingest_vectors_npz(small: Asif, tmp_path: Path, rng: np.random.Generator) -> None:
    img, txt = random_pairs(rng, 5)
    f = tmp_path / "v.npz"
    np.savez(f, image_vectors=img, text_vectors=txt, captions=np.array([f"c{i}" for i in range(5)]),
             ids=np.arange(100, 105), image_refs=np.array([f"{i}.jpg" for i in range(5)]))
    rep = ingest_vectors(small, f, tenant="acme")
    assert (rep.rows, rep.added, rep.duplicates) == (5, 5, 0)
    rec = small.engine.retrieve(small.anchors.collection, [102])[0]
    assert (rec.payload["caption"], rec.payload["image_ref"], rec.payload["tenant"]) == ("c2", "2.jpg", "acme")
    plain = tmp_path / "plain.npz"
    np.savez(plain, image_vectors=img, text_vectors=txt)
    assert ingest_vectors(small, plain).added == 5
    assert (ingest_vectors(small, plain).duplicates, small.count(), small.count("acme")) == (5, 5, 5)


def test_ingest_vectors_errors(small: Asif, tmp_path: Path, rng: np.random.Generator) -> None:
    img, txt = random_pairs(rng, 3)
    missing = tmp_path / "m.npz"
    np.savez(missing, image_vectors=img, texts=txt)
    with pytest.raises(InvalidInputError, match=r"arrays \['image_vectors', 'texts'\] and lacks \['text_vectors'\]"):
        ingest_vectors(small, missing)
    obj = tmp_path / "o.npz"
    np.savez(obj, image_vectors=img, text_vectors=txt, captions=np.array(["a", None, "c"], dtype=object))
    with pytest.raises(InvalidInputError, match="object array"):
        ingest_vectors(small, obj)
    wrong_dim = tmp_path / "w.npz"
    np.savez(wrong_dim, image_vectors=img[:, :-1], text_vectors=txt)
    with pytest.raises(FingerprintMismatchError, match=f"dimension {IMG_DIM - 1}"):
        ingest_vectors(small, wrong_dim)
    nan = tmp_path / "n.npz"
    bad = txt.copy()
    bad[2, 1] = np.nan
    np.savez(nan, image_vectors=img, text_vectors=bad)
    with pytest.raises(InvalidInputError, match="row 2 column 1"):
        ingest_vectors(small, nan)
    float_ids = tmp_path / "f.npz"
    np.savez(float_ids, image_vectors=img, text_vectors=txt, ids=np.array([1.5, 2.0, 3.0]))
    with pytest.raises(InvalidInputError, match="'ids'.*float64"):
        ingest_vectors(small, float_ids)
    assert small.count() == 0  # nothing of any refused file was written
    (tmp_path / "v.parquet").write_bytes(b"PAR1")
    with pytest.raises(ConfigError, match=r"\.npz"):
        ingest_vectors(small, tmp_path / "v.parquet")
    (tmp_path / "v.txt").write_text("1 2 3")
    with pytest.raises(InvalidInputError, match="unknown format"):
        ingest_vectors(small, tmp_path / "v.txt")
    with pytest.raises(NotFoundError, match="does not exist"):
        ingest_vectors(small, tmp_path / "nope.npz")
    assert TXT_DIM == txt.shape[1]
