import json
from collections import Counter
from pathlib import Path

import pytest

from mmfuse.data.manifest.errors import DataError
from mmfuse.data.manifest.source import ManifestSource
from mmfuse.data.modalities.image import ImageDataModule
from mmfuse.data.problems import check
from tests.conftest import write_manifest, write_png


def test_csv_with_split_and_class_names(tmp_path: Path) -> None:
    path = write_manifest(
        tmp_path / "m.csv",
        [
            {"id": "a", "split": "train", "text": "x", "label": "zebra", "extra": "1"},
            {"id": "b", "split": "val", "text": "y", "label": "ant", "extra": "2"},
            {"id": "c", "split": "test", "text": "", "label": "moth", "extra": "3"},
        ],
    )
    m = ManifestSource(str(path)).load()
    assert m.classes == ["ant", "moth", "zebra"]  # sorted names
    assert [r.id for r in m.split("train")] == ["a"]
    assert [m.target_index(r) for r in m.rows] == [2, 0, 1]
    assert m.rows[2].cells["text"] == ""
    assert m.root == tmp_path


def test_jsonl_with_integer_labels(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    lines = [{"id": f"s{i}", "split": "train", "text": "t", "label": i % 3} for i in range(6)]
    lines[1]["label"] = 4  # ids are class indices: 0..4 even though 3 is unused
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    m = ManifestSource(str(path)).load()
    assert m.classes == ["0", "1", "2", "3", "4"]
    assert [m.target_index(r) for r in m.rows] == [0, 4, 2, 0, 1, 2]
    assert [r.row for r in m.rows] == [1, 2, 3, 4, 5, 6]


def test_hashed_split_is_deterministic_and_follows_fractions(tmp_path: Path) -> None:
    rows = [{"id": f"sample-{i}", "label": "a"} for i in range(4000)]
    path = write_manifest(tmp_path / "m.csv", rows)
    source = ManifestSource(str(path), val_fraction=0.2, test_fraction=0.1)
    first = {r.id: r.split for r in source.load().rows}
    counts = Counter(first.values())
    assert abs(counts["val"] / 4000 - 0.2) < 0.03
    assert abs(counts["test"] / 4000 - 0.1) < 0.03
    # adding and reordering rows does not move any existing sample to another split
    path = write_manifest(tmp_path / "m2.csv", [{"id": "new", "label": "a"}, *reversed(rows)])
    again = {
        r.id: r.split for r in ManifestSource(str(path), val_fraction=0.2, test_fraction=0.1).load().rows
    }
    assert all(again[k] == v for k, v in first.items())
    reseeded = {r.id: r.split for r in ManifestSource(str(path), split_seed=1).load().rows}
    assert reseeded != first


def test_explicit_classes_keep_their_order(tmp_path: Path) -> None:
    path = write_manifest(tmp_path / "m.csv", [{"id": "a", "split": "train", "label": "low"}])
    m = ManifestSource(str(path), classes=["low", "high"]).load()
    assert m.classes == ["low", "high"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"name": "a", "label": "x"}], "no id column 'id'"),
        ([{"id": "a", "label": "x"}, {"id": "a", "label": "y"}], "row 2, id 'a', column 'id': duplicate id"),
        ([{"id": "a", "label": "x"}, {"id": " ", "label": "y"}], "row 2, column 'id': empty id"),
        ([{"id": "a", "split": "training", "label": "x"}], "row 1, id 'a', column 'split': split 'training'"),
        ([{"id": "a", "cls": "x"}], "no target column 'label'"),
    ],
)
def test_bad_manifests_name_file_row_and_column(tmp_path: Path, rows: list, message: str) -> None:
    path = write_manifest(tmp_path / "m.csv", rows)
    with pytest.raises(DataError, match=r"m\.csv") as info:
        ManifestSource(str(path)).load()
    assert message in str(info.value)


def test_malformed_csv_line_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("id,label\na,x\nb,y,surplus\n")
    with pytest.raises(DataError, match=r"row 2: line 3: 3 fields where the header has 2"):
        ManifestSource(str(path)).load()


def test_malformed_jsonl_line_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "a", "label": 1}\n{"id": "b", "label": \n')
    with pytest.raises(DataError, match=r"line 2: not valid JSON"):
        ManifestSource(str(path)).load()


def test_target_outside_given_classes(tmp_path: Path) -> None:
    path = write_manifest(tmp_path / "m.csv", [{"id": "a", "split": "train", "label": "purple"}])
    m = ManifestSource(str(path), classes=["red", "blue"]).load()
    with pytest.raises(DataError, match=r"row 1, id 'a', column 'label': target 'purple' is not one of"):
        m.target_index(m.rows[0])


def test_missing_manifest_and_bad_fractions(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="manifest not found"):
        ManifestSource(str(tmp_path / "nope.csv")).load()
    with pytest.raises(ValueError, match="sum to < 1"):
        ManifestSource("x.csv", val_fraction=0.6, test_fraction=0.5)


def test_inferred_class_names_come_in_natural_order(tmp_path: Path) -> None:
    # numbers inside names compare as numbers: class2 before class10 (sorted() gives class10 first)
    names = ["class10", "class2", "class1", "b", "a20", "a3"]
    rows = [{"id": f"s{i}", "split": "train", "text": "x", "label": n} for i, n in enumerate(names)]
    m = ManifestSource(str(write_manifest(tmp_path / "m.csv", rows))).load()
    assert m.classes == ["a3", "a20", "b", "class1", "class2", "class10"]
    # a `classes` list from the config always wins
    given = ["class10", "b", "a3", "a20", "class1", "class2"]
    assert ManifestSource(str(tmp_path / "m.csv"), classes=given).load().classes == given


def test_natural_key_orders_numbers_by_value() -> None:
    from mmfuse.data.manifest.class_names import natural_key

    words = ["x10", "x9", "x09", "10", "9", "x", "x²", "img_2_b", "img_10_a"]
    assert sorted(words, key=natural_key) == ["9", "10", "img_2_b", "img_10_a", "x", "x09", "x9", "x10", "x²"]


def test_a_cell_over_csvs_default_field_limit_is_read(tmp_path: Path) -> None:
    text = "word " * 40_000  # 200,000 characters; csv's default limit is 131,072
    rows = [{"id": "a", "split": "train", "text": text, "label": "x"}]
    rows.append({"id": "b", "split": "train", "text": "short", "label": "y"})
    m = ManifestSource(str(write_manifest(tmp_path / "m.csv", rows))).load()
    assert [r.id for r in m.rows] == ["a", "b"] and m.rows[0].cells["text"] == text


def test_paths_outside_the_manifests_folder(tmp_path: Path) -> None:
    data, shared = tmp_path / "data", tmp_path / "shared"
    write_png(data / "media" / "in.png", 0, size=8)
    write_png(shared / "out.png", 1, size=8)
    (data / "link").symlink_to(shared, target_is_directory=True)  # a link inside: followed
    cells = [
        ("train", "media/in.png"),
        ("train", "../shared/out.png"),
        ("train", str(shared / "out.png")),
        ("train", "link/out.png"),
        ("train", "media/../media/in.png"),  # ".." that stays inside
        ("val", "media/in.png"),
        ("test", "media/in.png"),
    ]
    rows = [{"id": f"s{i}", "split": s, "image": c, "label": "a"} for i, (s, c) in enumerate(cells)]
    path = write_manifest(data / "m.csv", rows)
    report = check(ManifestSource(str(path)), {"image": ImageDataModule(size=8)}, num_workers=0)
    assert [(e.row, e.sample_id, e.column) for e in report.problems] == [
        (2, "s1", "image"),
        (3, "s2", "image"),
    ]
    relative, absolute = (e.reason for e in report.problems)
    assert relative.startswith(f"a path outside the manifest's folder {data} ('../shared/out.png')")
    assert absolute.startswith(f"an absolute path outside the manifest's folder {data} ('{shared}/out.png')")
    assert "allow_outside_root: true" in relative
    assert report.coverage["train"]["image"]["broken"] == 2
    allowed = ManifestSource(str(path), allow_outside_root=True)
    assert check(allowed, {"image": ImageDataModule(size=8)}, num_workers=0).ok
    # an absolute path inside the folder is inside
    assert ManifestSource(str(path)).load().outside_root(str(data / "media" / "in.png")) is None
