"""Attaching to an existing Qdrant collection whose vector and payload names differ (mapped by settings)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import IMG_DIM, TXT_DIM, small_settings
from qdrant_client import QdrantClient
from qdrant_client import models as m

from asif_qdrant import Asif, SchemaError
from asif_qdrant.relrep import dense_reference_scores


def _existing(client: QdrantClient, n: int, rng: np.random.Generator, uuid_ids: bool = False):
    client.create_collection(
        "products",
        vectors_config={"img": m.VectorParams(size=IMG_DIM, distance=m.Distance.COSINE),
                        "txt": m.VectorParams(size=TXT_DIM, distance=m.Distance.COSINE)},
    )
    img, txt = rng.standard_normal((n, IMG_DIM)), rng.standard_normal((n, TXT_DIM))
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(n)] if uuid_ids else list(range(10, 10 + n))
    client.upsert("products", [
        m.PointStruct(id=ids[i], vector={"img": img[i].tolist(), "txt": txt[i].tolist()}, payload={"title": f"t{i}"})
        for i in range(n)
    ])
    return ids, img, txt


def test_attach_existing_collection_with_other_names() -> None:
    rng = np.random.default_rng(0)
    client = QdrantClient(":memory:")
    ids, img, txt = _existing(client, 20, rng)
    opts = small_settings(anchors_collection="products", vector_names={"image": "img", "text": "txt"},
                          payload_names={"caption": "title"})
    a = Asif.open(client=client, **opts)
    assert a.count() == 20  # points without a tenant joined the shared anchors
    prompts = rng.standard_normal((3, TXT_DIM))
    a.define_labels("L", list("abc"), templates="plain", prompt_vectors=prompts, k=5, p=4)
    q = rng.standard_normal((2, IMG_DIM))
    preds = a.classify(vectors=q, labels="L", top=3)
    ref = dense_reference_scores(q, img, prompts, txt, 5, 4, anchor_ids=ids)
    for b in range(2):
        got = {s.label: s.score for s in preds[b].top}
        for i, c in enumerate("abc"):
            assert abs(got.get(c, 0.0) - ref[b, i]) < 1e-5
    ex = a.explain(vector=q[0], labels="L")
    assert all(c.caption.startswith("t") for c in ex.contributions)
    # the plugin writes in the collection's own names
    new = a.add_vectors(rng.standard_normal((1, IMG_DIM)), rng.standard_normal((1, TXT_DIM)), captions=["fresh"]).ids
    rec = client.retrieve("products", new, with_payload=True, with_vectors=True)[0]
    assert rec.payload["title"] == "fresh" and set(rec.vector) == {"img", "txt"}
    assert "asif_anchors" not in {c.name for c in client.get_collections().collections}
    a.close()


def test_attach_refuses_uuid_ids() -> None:
    client = QdrantClient(":memory:")
    _existing(client, 3, np.random.default_rng(1), uuid_ids=True)
    with pytest.raises(SchemaError, match="integers below 2\\*\\*32"):
        Asif.open(client=client, **small_settings(anchors_collection="products",
                                                  vector_names={"image": "img", "text": "txt"}))


@pytest.mark.slow
def test_optimize_relayouts_an_attached_edge_collection_in_its_own_names(tmp_path: Path) -> None:
    """An existing Edge collection from before segment layouts, attached with other names: `optimize` rewrites
    the physical collection, and its points, names and answers stay as they were."""
    from asif_qdrant.engines import edge
    from asif_qdrant.engines.base import CollectionSpec, PointBatch

    rng = np.random.default_rng(1)
    img, txt = rng.standard_normal((30, IMG_DIM)), rng.standard_normal((30, TXT_DIM))
    e = edge.EdgeEngine(tmp_path / "store")
    e.create_collection("products", CollectionSpec(dense={"img": IMG_DIM, "txt": TXT_DIM}))
    (tmp_path / "store" / "collections" / "products" / edge.LAYOUT_FILE).unlink()  # as an earlier version made it
    ids = list(range(10, 40))
    e.upsert("products", PointBatch(ids, {"img": img.astype(np.float32), "txt": txt.astype(np.float32)},
                                    payloads=[{"title": f"t{i}"} for i in ids]))
    e.close()
    opts = small_settings(anchors_collection="products", vector_names={"image": "img", "text": "txt"},
                          payload_names={"caption": "title"})
    a = Asif.open(tmp_path / "store", **opts)
    try:
        prompts = rng.standard_normal((3, TXT_DIM))
        a.define_labels("L", list("abc"), templates="plain", prompt_vectors=prompts, k=5, p=4)
        q = rng.standard_normal((2, IMG_DIM))
        before = [[(s.label, s.score) for s in p.top] for p in a.classify(vectors=q, labels="L", top=3)]
        assert a.optimize() is True and a.optimize() is False
        assert (tmp_path / "store" / "collections" / "products" / edge.LAYOUT_FILE).exists()
        after = [[(s.label, s.score) for s in p.top] for p in a.classify(vectors=q, labels="L", top=3)]
        assert after == before and a.count() == 30
        rec = a.engine.inner.retrieve("products", [10], with_vectors=("img",))[0]  # type: ignore[attr-defined]
        assert rec.payload["title"] == "t10"
        np.testing.assert_allclose(rec.vectors["img"], img[0] / np.linalg.norm(img[0]), atol=1e-6)
    finally:
        a.close()


def test_capabilities_are_declared_and_the_mapped_engine_forwards_nothing_implicitly(tmp_path: Path) -> None:
    from asif_qdrant.engines.base import Relayout
    from asif_qdrant.engines.client import ClientEngine
    from asif_qdrant.engines.edge import EdgeEngine
    from asif_qdrant.engines.mapped import MappedEngine

    edge, local = EdgeEngine(tmp_path / "store"), ClientEngine(location=":memory:")
    try:
        assert isinstance(edge, Relayout) and not isinstance(local, Relayout)
        mapped = MappedEngine(local, "asif_anchors", "products")
        assert mapped.relayout("asif_anchors") is False  # the inner engine has no relayout
        assert not hasattr(mapped, "client") and not hasattr(mapped, "is_local")  # no __getattr__ forwarding
        assert mapped.inner is local
    finally:
        edge.close()
        local.close()
