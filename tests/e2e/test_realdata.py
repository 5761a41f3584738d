"""Instant, per-tenant model edits on real data (Flickr8k anchors, CIFAR-10 images, real encoders).

A CIFAR-10 image that the shared anchors misclassify gets a handful of correct pairs in one tenant: that
tenant's prediction flips, the other tenant's does not; deleting the pairs brings the old answer back exactly.
"""

from __future__ import annotations

import pytest
from conftest import SHARED_DATA

from asif_qdrant import Asif
from asif_qdrant.evaluation.demo import CIFAR10
from asif_qdrant.ingest import add_pairs, ingest

FLICKR, CIFAR = SHARED_DATA / "flickr8k", SHARED_DATA / "cifar10-test"
pytestmark = [
    pytest.mark.skipif(not FLICKR.is_dir() or not CIFAR.is_dir(), reason=f"shared data not at {SHARED_DATA}"),
    pytest.mark.data,
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    a = Asif.open(tmp_path_factory.mktemp("real") / "store", k=200, p=8)
    report = ingest(a, FLICKR, limit=1000, progress=False)  # 200 images x 5 captions
    assert report.added == a.count() > 900
    a.define_labels("cifar10", CIFAR10, "photo")
    yield a
    a.close()


def _scores(pred) -> list[tuple[str, float]]:
    return [(s.label, round(s.score, 6)) for s in pred.top]


def test_tenant_edit_flips_only_that_tenant_and_delete_restores(store: Asif) -> None:
    candidates = [(c, CIFAR / c / f"{i:04d}.jpg") for c in ("cat", "ship", "truck", "frog") for i in range(6)]
    preds = store.classify(images=[str(p) for _, p in candidates], labels="cifar10", top=10)
    wrong = [(c, p, pr) for (c, p), pr in zip(candidates, preds, strict=True) if pr.label != c]
    assert wrong, "expected the small shared anchor set to misclassify some CIFAR images"
    true_class, image, before = wrong[0]
    # a handful of correct pairs for its class, in tenant acme only (other images of that class)
    extra = [CIFAR / true_class / f"{i:04d}.jpg" for i in range(100, 110)]
    added = add_pairs(store, extra, [f"a photo of a {true_class}."] * len(extra), tenant="acme").ids
    assert len(added) == 10 and store.count("acme") == 10

    acme = store.classify(images=[str(image)], labels="cifar10", top=10, tenant="acme")[0]
    globex = store.classify(images=[str(image)], labels="cifar10", top=10, tenant="globex")[0]
    shared = store.classify(images=[str(image)], labels="cifar10", top=10)[0]
    assert acme.label == true_class != before.label
    assert _scores(globex) == _scores(before) and _scores(shared) == _scores(before)
    # acme's answer is explained by its own new pairs
    ex = store.explain(image=str(image), labels="cifar10", tenant="acme")
    assert ex.label == true_class
    assert {c.id for c in ex.contributions[:3]} & set(added)

    assert store.delete(added, tenant="acme").count == 10
    restored = store.classify(images=[str(image)], labels="cifar10", top=10, tenant="acme")[0]
    assert restored.label == before.label
    assert _scores(restored) == _scores(before)
