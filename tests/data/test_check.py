"""``mmfuse check-data``: every planted problem found, on real files, and nothing else."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from mmfuse.data import (
    AudioDataModule,
    DataError,
    ImageDataModule,
    ManifestSource,
    MultimodalDataModule,
    TextDataModule,
)
from mmfuse.data.decode import STATUSES
from mmfuse.data.problems import check
from mmfuse.main import main
from tests.conftest import quickstart_args, write_manifest
from tests.data.messy import MAX_PIXELS, Messy, build_messy, modalities, source

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def messy(tmp_path: Path) -> Messy:
    return build_messy(tmp_path / "messy")


def _found(problems: list[DataError]) -> set[tuple[int | None, str | None, str]]:
    return {(e.row, e.column, e.reason) for e in problems}


def _matches(planted: set[tuple[int, str | None, str]], problems: list[DataError]) -> None:
    found = _found(problems)
    for row, column, fragment in planted:
        hits = [f for f in found if f[0] == row and f[1] == column and fragment in f[2]]
        assert len(hits) == 1, (row, column, fragment, sorted(found, key=str))
    assert len(problems) == len(planted), sorted(found, key=str)  # and nothing else


def test_every_planted_problem_and_no_other(messy: Messy) -> None:
    report = check(source(messy), modalities(), num_workers=2)
    _matches(messy.planted, report.problems)
    by_row = {e.row: e for e in report.problems}
    assert by_row[15].sample_id == "b_missing" and by_row[15].file == str(
        messy.manifest.parent / "media/gone.png"
    )
    assert by_row[15].split == "train" and by_row[20].split == "val"
    assert report.rows == messy.rows
    # coverage: g2 has no audio and g9 no image (missing, not broken); the broken ones are counted
    cover = report.coverage
    assert [cover["train"]["audio"][s] for s in STATUSES] == [11, 1, 3]  # present, missing, broken
    assert [cover["val"]["image"][s] for s in STATUSES] == [4, 1, 0]
    assert report.class_counts["val"] == {"cat": 3, "dog": 1}  # b_label's "bird" is not counted
    assert not report.ok


def test_serial_and_parallel_checks_agree(messy: Messy) -> None:
    serial, parallel = (check(source(messy), modalities(), num_workers=w) for w in (0, 2))
    assert _found(serial.problems) == _found(parallel.problems)
    assert serial.coverage == parallel.coverage


def _config(tmp_path: Path, messy: Messy) -> Path:
    config = yaml.safe_load((ROOT / "configs/quickstart.yaml").read_text())
    spec = {name: {"class_path": f"mmfuse.data.{type(dm).__name__}"} for name, dm in modalities().items()}
    spec["audio"]["init_args"] = {"sample_rate": 8000, "n_fft": 128, "hop_length": 128, "n_mels": 8}
    spec["text"]["init_args"] = {"required": True}
    spec["image"]["init_args"] = {"max_pixels": MAX_PIXELS}
    config["data"]["init_args"]["source"] = {
        "class_path": "mmfuse.data.ManifestSource",
        "init_args": {"path": str(messy.manifest), "classes": ["cat", "dog"]},
    }
    config["data"]["init_args"]["modalities"] = spec
    path = tmp_path / "messy.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_command_prints_one_line_per_problem_and_fails(
    messy: Messy, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    out_csv = tmp_path / "problems.csv"
    args = ["check-data", "--config", str(_config(tmp_path, messy)), "--problems_csv", str(out_csv)]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 1
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if " row " in line and " column " in line]
    assert len(lines) == len(messy.planted)
    assert any(
        "row 21  id b_silent  column audio  file " in line
        and line.endswith("audio is silent (every sample is zero)")
        for line in lines
    )
    assert "19 problems in 19 rows" in printed
    with out_csv.open() as f:
        rows = list(csv.DictReader(f))
    assert {(int(r["row"]), r["column"] or None) for r in rows} == {(r, c) for r, c, _ in messy.planted}


def test_command_on_clean_data_exits_zero(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    main(["check-data", *quickstart_args(synthetic_root, tmp_path)])  # no SystemExit: code 0
    printed = capsys.readouterr().out
    assert "OK: no problems found" in printed and "160 rows" in printed


def test_command_help_explains_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check-data", "--help"])
    assert info.value.code == 0
    assert "decode every file" in capsys.readouterr().out


def test_a_column_that_does_not_exist(tmp_path: Path, small_manifest: Path) -> None:
    mods = {"image": ImageDataModule(size=8), "text": TextDataModule(column="caption")}
    report = check(ManifestSource(str(small_manifest), target="kind"), mods, num_workers=0)
    assert [(e.row, e.column) for e in report.problems] == [(None, "kind"), (None, "caption")]
    assert "no target column 'kind'" in report.problems[0].reason
    assert "does not have" in report.problems[1].reason
    assert report.coverage["train"]["image"]["present"] == 8  # the rest is still checked
    data = MultimodalDataModule(
        ManifestSource(str(small_manifest), target="kind"), mods, on_bad_sample="skip"
    )
    with pytest.raises(DataError, match="no target column 'kind'"):
        data.setup("fit")  # a whole-file problem is not a row that training could skip


def test_jsonl_bad_lines_are_reported_and_the_rest_is_read(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    good = [
        json.dumps({"id": f"s{i}", "split": split, "text": "hi there", "label": "a"})
        for i, split in enumerate(["train", "val", "test"])
    ]
    deep = '{"id": "s7", "text": ' + "[" * 5000 + "]" * 5000 + "}"  # 10 KB, nested 5000 levels
    path.write_bytes(
        "\n".join([good[0], '{"id": "s9", "text": ', good[1], '["a list"]', good[2]]).encode()
        + b'\n{"id": "s8", "text": "\xff\xfe"}\n'
        + deep.encode()
    )
    report = check(ManifestSource(str(path)), {"text": TextDataModule()}, num_workers=0)
    assert [(e.row, e.reason.split(":")[0]) for e in report.problems] == [
        (2, "line 2"),
        (4, "line 4"),
        (6, "line 6"),
        (7, "line 7"),
    ]
    assert "not valid JSON" in report.problems[0].reason and "not valid UTF-8" in report.problems[2].reason
    assert report.problems[3].reason == "line 7: not valid JSON (nested too deeply)"
    assert report.rows == {"train": 1, "val": 1, "test": 1, "unknown": 4}


def test_stray_labels_are_not_taken_for_classes(tmp_path: Path) -> None:
    splits = ["train"] * 24 + ["val"] * 3 + ["test"] * 3
    rows = [{"id": f"s{i}", "split": s, "text": "t", "label": "abc"[i % 3]} for i, s in enumerate(splits)]
    rows.append({"id": "x", "split": "train", "text": "t", "label": "banana"})
    report = check(
        ManifestSource(str(write_manifest(tmp_path / "m.csv", rows))), {"text": TextDataModule()}, 0
    )
    assert report.classes == ["a", "b", "c"]
    assert [(e.sample_id, e.column) for e in report.problems] == [("x", "label")]
    # integer class ids: a stray large id does not add 90 empty classes
    rows = [{**r, "label": str("abc".index(r["label"]) if r["id"] != "x" else 99)} for r in rows]
    m = ManifestSource(str(write_manifest(tmp_path / "n.csv", rows))).load()
    assert m.classes == ["0", "1", "2"] and m.target_problems(m.rows[-1]) != []
    # a small dataset gives no evidence of what is stray: every value is a class
    small = ManifestSource(str(write_manifest(tmp_path / "s.csv", rows[:3] + rows[-1:]))).load()
    assert small.classes == [str(i) for i in range(100)]


def test_wrong_sample_rate_is_fine_with_resample(messy: Messy) -> None:
    mods = modalities()
    mods["audio"] = AudioDataModule(sample_rate=8000, resample=True, n_fft=128, hop_length=128, n_mels=8)
    report = check(source(messy), mods, num_workers=0)
    assert not any(e.sample_id == "b_rate" for e in report.problems)
    assert len(report.problems) == len(messy.planted) - 1


class _CallsGetcwd:
    """Unpickling this calls ``os.getcwd`` (harmless): content that ``weights_only`` refuses."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (os.getcwd, ())


def test_every_planted_graph_problem_and_no_other(tmp_path: Path) -> None:
    pytest.importorskip("torch_geometric")
    from mmfuse.data.modalities.graph import GraphDataModule

    root = tmp_path / "graphs"
    (root / "g").mkdir(parents=True)
    ring = {"x": [[1.0, 0.0]] * 3, "edge_index": [[0, 1, 2], [1, 2, 0]]}
    rows = []
    for i, split in enumerate(["train"] * 4 + ["val", "test"]):
        (root / "g" / f"{i}.json").write_text(json.dumps(ring))
        rows.append({"id": f"g{i}", "split": split, "graph": f"g/{i}.json", "label": "ab"[i % 2]})
    (root / "g" / "deep.json").write_text('{"x": ' + "[" * 20_000 + "]" * 20_000 + "}")  # 40 KB
    (root / "g" / "big.json").write_text(json.dumps({"x": [[0.5, 0.5]] * 12_000, "edge_index": []}))
    nodes = torch.ones(2, 2)
    torch.save(
        {"x": nodes, "edge_index": torch.zeros(2, 0, dtype=torch.long), "a": _CallsGetcwd()},
        root / "g" / "u.pt",
    )
    (root / "g" / "junk.pt").write_bytes(b"hello world")
    (tmp_path / "elsewhere.json").write_text(json.dumps(ring))
    planted = [
        ("train", "b_deep", "g/deep.json", "nested too deeply"),
        ("train", "b_big", "g/big.json", "more than max_json_mb=0.1"),
        ("val", "b_unsafe", "g/u.pt", "unsafe content refused"),
        ("test", "b_junk", "g/junk.pt", "cannot read .pt file"),
        ("train", "b_outside", "../elsewhere.json", "a path outside the manifest's folder"),
    ]
    for split, sample_id, cell, _ in planted:
        rows.append({"id": sample_id, "split": split, "graph": cell, "label": "a"})
    manifest = write_manifest(root / "manifest.csv", rows)
    expected = {(7 + n, "graph", fragment) for n, (*_, fragment) in enumerate(planted)}
    source = ManifestSource(str(manifest), classes=["a", "b"])
    report = check(source, {"graph": GraphDataModule(node_dim=2, max_json_mb=0.1)}, num_workers=2)
    _matches(expected, report.problems)
    # skip mode leaves out exactly these rows, and accounts for every row
    data = MultimodalDataModule(
        source, {"graph": GraphDataModule(node_dim=2, max_json_mb=0.1)}, on_bad_sample="skip"
    )
    data.setup("fit")
    data.setup("test")
    assert {e.sample_id for e in data.selection.skipped()} == {p[1] for p in planted}
    for count in data.selection.accounting().values():
        assert count["used"] + count["skipped"] == count["rows"]
    assert data.selection.accounting()["train"] == {"rows": 7, "used": 4, "skipped": 3}
