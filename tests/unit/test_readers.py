"""The one reader of the package: rows of CSV/TSV/JSONL files, image folders, image specs and references."""

from __future__ import annotations

from pathlib import Path

import pytest

from asif_qdrant.errors import InvalidInputError, NotFoundError
from asif_qdrant.readers import (
    ROW_FORMATS,
    class_folders,
    expand_images,
    file_format,
    image_bases,
    resolve_image,
    rows_from_file,
)


def test_formats_from_suffixes_and_the_error_names_the_ones_that_work() -> None:
    assert [file_format(Path(f"a{s}"), "f", "x") for s in (".TSV", ".csv", ".jsonl", ".ndjson")] == [
        "tsv", "csv", "jsonl", "jsonl"]
    with pytest.raises(InvalidInputError, match=r"list file 'a.txt' has an unknown format \(suffix '.txt'\): use a "
                                                r"\.tsv, \.csv or \.jsonl file with rows"):
        file_format(Path("a.txt"), "list file", "rows")
    assert file_format(Path("a.txt"), "f", "x", {**ROW_FORMATS, ".txt": "tsv"}) == "tsv"


def test_delimited_rows_keep_line_numbers_and_report_bad_rows(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text(' Image ,Caption\nx.jpg,"a, quoted caption"\n\nonly-one-field\ny.jpg,"two\nlines"\nz.jpg,c\n')
    seen: list[list[str]] = []
    rows = list(rows_from_file(f, "csv", "captions file", seen.append))
    assert seen == [["image", "caption"]]
    assert rows == [
        (2, {"image": "x.jpg", "caption": "a, quoted caption"}),
        (4, "the row has 1 fields but the header has 2 (image, caption)"),
        (5, {"image": "y.jpg", "caption": "two\nlines"}),
        (7, {"image": "z.jpg", "caption": "c"}),
    ]
    t = tmp_path / "a.tsv"
    t.write_text("image\tlabel\nq.png\tcat\n")
    assert list(rows_from_file(t, "tsv", "f")) == [(2, {"image": "q.png", "label": "cat"})]


def test_jsonl_rows_lower_keys_only_when_asked_and_report_bad_rows(tmp_path: Path) -> None:
    f = tmp_path / "a.jsonl"
    f.write_text('{"Image": "x.jpg", "label": "cat"}\n\n[1, 2]\n{not json\n{"image": "y.jpg"}\n')
    seen: list[list[str]] = []
    rows = list(rows_from_file(f, "jsonl", "f", seen.append, lower_keys=True))
    assert seen == [["image", "label"]]  # the first object's keys, checked once
    assert rows[0] == (1, {"image": "x.jpg", "label": "cat"})
    assert rows[1] == (3, "the row is a JSON list, not an object")
    assert rows[2][0] == 4 and str(rows[2][1]).startswith("the row is not valid JSON")
    assert rows[3] == (5, {"image": "y.jpg"})
    assert list(rows_from_file(f, "jsonl", "f"))[0] == (1, {"Image": "x.jpg", "label": "cat"})


def test_unreadable_files_name_the_file_and_the_fix(tmp_path: Path) -> None:
    f = tmp_path / "latin1.csv"
    f.write_bytes("image,caption\nx.jpg,caf\xe9\n".encode("latin-1"))
    with pytest.raises(InvalidInputError, match=r"captions file '.*latin1\.csv' is not UTF-8 text .*save it as UTF-8"):
        list(rows_from_file(f, "csv", "captions file"))

    def refuse(columns: list[str]) -> None:
        raise InvalidInputError(f"bad columns {columns}")

    (tmp_path / "ok.csv").write_text("image,caption\n")
    with pytest.raises(InvalidInputError, match=r"bad columns \['image', 'caption'\]"):
        list(rows_from_file(tmp_path / "ok.csv", "csv", "f", refuse))


def test_image_references_resolve_against_the_bases_in_order(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"x")
    (tmp_path / "b.jpg").write_bytes(b"x")
    bases = image_bases(tmp_path)
    assert bases == [tmp_path, tmp_path / "images"]
    assert resolve_image("a.jpg", bases) == (tmp_path / "images" / "a.jpg").resolve()
    assert resolve_image("b.jpg", bases) == (tmp_path / "b.jpg").resolve()
    assert resolve_image("gone.jpg", bases) == (tmp_path / "gone.jpg").resolve()  # the first base, for the message
    assert resolve_image("/abs/c.jpg", bases) == Path("/abs/c.jpg")


def test_class_folders_and_image_specs(tmp_path: Path) -> None:
    for rel in ("cat/2.jpg", "cat/1.PNG", "cat/notes.txt", "dog/sub/3.jpg", "empty/readme.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert class_folders(tmp_path) == [
        ("cat", [tmp_path / "cat" / "1.PNG", tmp_path / "cat" / "2.jpg"]),
        ("dog", []),  # images only directly in the class folder
        ("empty", []),
    ]
    with pytest.raises(NotFoundError, match="folder '.*nope' does not exist: give a folder with one sub-folder"):
        class_folders(tmp_path / "nope")
    files, bad = expand_images([tmp_path / "dog", str(tmp_path / "cat" / "*.jpg"), tmp_path / "cat" / "2.jpg",
                                tmp_path / "empty", "missing.jpg", str(tmp_path / "*.gif")])
    assert files == [tmp_path / "dog" / "sub" / "3.jpg", tmp_path / "cat" / "2.jpg"]  # no repeats
    assert [(Path(s).name, why.split(" (")[0]) for s, why in bad] == [
        ("empty", "the folder holds no images"), ("missing.jpg", "no such file or folder"),
        ("*.gif", "the pattern matches no file")]
