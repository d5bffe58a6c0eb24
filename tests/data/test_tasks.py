"""Several targets per manifest: reading each kind, missing values as masks, invalid cells as row problems."""

from __future__ import annotations

import csv
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mmfuse.data import DataError, ManifestSource, MultimodalDataModule, Task, TextDataModule
from mmfuse.data.manifest.tasks import TaskSpec, first_multiclass
from mmfuse.data.problems import check
from tests.conftest import write_manifest

TASKS = [
    Task(name="label"),
    Task(name="cues", kind="multilabel", columns=["cue_a", "cue_b"]),
    Task(name="tags", kind="multilabel", delimiter=";"),
    Task(name="score", kind="regression"),
]


@pytest.fixture
def multitask_manifest(tmp_path: Path) -> Path:
    """12 text-only rows (8 train, 2 val, 2 test) with four targets and planted missing cells."""
    rows = []
    for i in range(12):
        rows.append(
            {
                "id": f"s{i}",
                "split": "train" if i < 8 else ("val" if i < 10 else "test"),
                "text": f"sample {i} says {'hello' if i % 2 else 'goodbye'}",
                "label": "cat" if i % 2 else "dog",
                "cue_a": str(i % 2),
                "cue_b": str(i // 6),
                "tags": ["red;blue", "blue", "none", "green ; red"][i % 4],
                "score": f"{i / 4:.2f}",
            }
        )
    rows[8].update(label="", cue_b="", score="")  # s8: label, one cue and the score missing
    rows[9].update(cue_a="", cue_b="", tags="")  # s9: every multilabel target missing
    return write_manifest(tmp_path / "manifest.csv", rows)


def _dm(manifest: Path, tasks: list[Task] | None = TASKS, **kwargs: object) -> MultimodalDataModule:
    source = ManifestSource(str(manifest), tasks=tasks, target=None if tasks is None else "label")
    text = TextDataModule(max_length=8, vocab_size=32)
    return MultimodalDataModule(source, {"text": text}, batch_size=4, **kwargs)  # type: ignore[arg-type]


def _rewrite(manifest: Path, index: int, **cells: str) -> None:
    with manifest.open() as f:
        rows = list(csv.DictReader(f))
    rows[index].update(cells)
    write_manifest(manifest, rows)


def test_every_kind_is_read_into_batch_targets_with_missing_values_masked(multitask_manifest: Path) -> None:
    dm = _dm(multitask_manifest)
    dm.setup("fit")
    assert dm.tasks == [
        {"name": "label", "kind": "multiclass", "names": ["cat", "dog"]},
        {"name": "cues", "kind": "multilabel", "names": ["cue_a", "cue_b"]},
        {"name": "tags", "kind": "multilabel", "names": ["blue", "green", "red"]},  # "none": no label
        {"name": "score", "kind": "regression", "names": []},
    ]
    batch = next(iter(dm.val_dataloader()))  # s8, s9: nothing dropped for its missing targets
    assert batch.ids == ["s8", "s9"]
    t = batch.targets
    assert t["label"].dtype == torch.long and t["label"].tolist() == [-1, 0]
    assert t["cues"].dtype == torch.float32 and t["cues"].shape == (2, 2)
    assert t["cues"][0, 0] == 0 and torch.isnan(t["cues"][0, 1]) and torch.isnan(t["cues"][1]).all()
    assert t["tags"][0].tolist() == [1.0, 0.0, 1.0] and torch.isnan(t["tags"][1]).all()  # "red;blue"
    assert torch.isnan(t["score"][0]) and t["score"][1].item() == pytest.approx(2.25)
    train = [b for b in dm.train_dataloader()]
    tags = {i: b.targets["tags"][k].tolist() for b in train for k, i in enumerate(b.ids)}
    assert tags["s2"] == [0.0, 0.0, 0.0] and tags["s3"] == [0.0, 1.0, 1.0]  # "none"; "green ; red"


@pytest.mark.parametrize(
    ("cells", "column", "reason"),
    [
        ({"score": "abc"}, "score", "regression target 'abc' is not a number"),
        ({"score": "inf"}, "score", "regression target 'inf' is not a finite number"),
        ({"cue_b": "2"}, "cue_b", "multilabel cell '2' is not 0 or 1"),
        ({"tags": "red;purple"}, "tags", "label 'purple' is not one of the labels ['blue', 'green', 'red']"),
    ],
)
def test_an_invalid_target_cell_names_file_row_id_and_column(
    multitask_manifest: Path, cells: dict[str, str], column: str, reason: str, tmp_path: Path
) -> None:
    _rewrite(multitask_manifest, 10, **cells)  # s10, a test row (data row 11)
    # fixed label names: inferred ones would take a label seen once for a label of its own
    tasks = [replace(t, classes=["blue", "green", "red"]) if t.name == "tags" else t for t in TASKS]
    dm = _dm(multitask_manifest, tasks=tasks)
    dm.setup("test")
    with pytest.raises(DataError) as info:
        list(dm.test_dataloader())
    e = info.value
    assert (e.file, e.row, e.sample_id, e.column, e.reason) == (
        str(multitask_manifest),
        11,
        "s10",
        column,
        reason,
    )
    assert f"row 11, id 's10', column '{column}': {reason}" in str(e)

    skip = _dm(multitask_manifest, tasks=tasks, on_bad_sample="skip")
    skip.setup("test")
    assert [i for b in skip.test_dataloader() for i in b.ids] == ["s11"]  # the bad row left out
    [skipped] = skip.selection.skipped()
    assert (skipped.sample_id, skipped.column) == ("s10", column)
    # predict keeps the row: its invalid target is just unknown there
    skip.predict_split = "test"
    skip.setup("predict")
    [batch] = list(skip.predict_dataloader())
    assert batch.ids == ["s10", "s11"]
    # and mmfuse check-data reports the same problem
    report = check(ManifestSource(str(multitask_manifest), tasks=tasks), {"text": TextDataModule()}, 0)
    assert [(p.sample_id, p.column, p.reason) for p in report.problems] == [("s10", column, reason)]


def test_a_labelled_row_needs_at_least_one_target(multitask_manifest: Path) -> None:
    _rewrite(multitask_manifest, 3, label="", cue_a="", cue_b="", tags="", score="")
    m = ManifestSource(str(multitask_manifest), tasks=TASKS).load()
    assert m.target_problems(m.rows[3]) == [
        ("label", "every target is empty (columns ['label', 'cue_a', 'cue_b', 'tags', 'score'])")
    ]
    assert m.target_problems(m.rows[8]) == []  # some targets missing: fine, they are masked


def test_unlabelled_manifest_uses_every_row_and_has_no_targets(multitask_manifest: Path) -> None:
    _rewrite(multitask_manifest, 3, label="", cue_a="", cue_b="", tags="", score="nonsense")
    dm = _dm(multitask_manifest, tasks=None)  # target: null, no tasks
    dm.setup("fit")
    assert dm.tasks == [] and dm.task is None
    batches = list(dm.train_dataloader())
    assert sorted(i for b in batches for i in b.ids) == [f"s{i}" for i in range(8)]
    assert all(b.targets == {} for b in batches)


def test_missing_target_column_fails_fit_but_not_predict(multitask_manifest: Path) -> None:
    tasks = [*TASKS, Task(name="depth", kind="regression")]  # no such column
    dm = _dm(multitask_manifest, tasks=tasks)
    with pytest.raises(
        DataError, match="task 'depth' reads column 'depth', which the manifest does not have"
    ):
        dm.setup("fit")
    dm = _dm(multitask_manifest, tasks=tasks)
    dm.setup("predict")
    [batch] = list(dm.predict_dataloader())
    assert torch.isnan(batch.targets["depth"]).all()
    # a task whose names would have to come from the missing column cannot be built at all
    with pytest.raises(DataError, match="no target column 'kind'"):
        ManifestSource(str(multitask_manifest), tasks=[Task(name="kind")]).load()


def test_checkpoint_class_order_wins_per_task(multitask_manifest: Path) -> None:
    dm = _dm(multitask_manifest)
    dm.setup("fit")
    state = dm.state_dict()
    assert state["task_classes"] == {
        "label": ["cat", "dog"],
        "cues": ["cue_a", "cue_b"],
        "tags": ["blue", "green", "red"],
    }
    state["task_classes"] = {"label": ["dog", "cat"], "tags": ["red", "green", "blue"], "cues": ["x", "y"]}
    restored = _dm(multitask_manifest)
    restored.load_state_dict(state)
    restored.setup("fit")
    assert [t["names"] for t in restored.tasks] == [
        ["dog", "cat"],
        ["cue_a", "cue_b"],
        ["red", "green", "blue"],
        [],
    ]
    batch = next(iter(restored.val_dataloader()))
    assert batch.targets["label"].tolist() == [-1, 1]  # s9 is a dog: index 0 -> 1 in the old order
    assert batch.targets["tags"][0].tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "type"}, "task name 'type' cannot be used"),
        ({"name": "a.b"}, "task name 'a.b' cannot be used"),
        ({"name": "x", "kind": "ordinal"}, "kind 'ordinal' is not one of"),
        ({"name": "x", "kind": "regression", "classes": ["a"]}, "a regression task has no classes"),
        ({"name": "x", "columns": ["a", "b"]}, "a multiclass task reads one column"),
        (
            {"name": "x", "kind": "multilabel", "columns": ["a", "b"], "classes": ["p", "q"]},
            "named by its columns",
        ),
    ],
)
def test_bad_task_declarations(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Task(**kwargs)


def test_duplicate_task_names_and_classes_beside_tasks_are_refused() -> None:
    with pytest.raises(ValueError, match="task names must be distinct"):
        ManifestSource("m.csv", tasks=[Task(name="a"), Task(name="a", kind="regression")])
    with pytest.raises(ValueError, match="set `classes` on each task"):
        ManifestSource("m.csv", tasks=[Task(name="a")], classes=["x", "y"])


def test_nan_is_the_missing_value_not_a_number_cell(multitask_manifest: Path) -> None:
    # "nan" written in a cell is not a number to learn from: it is refused like any invalid value
    _rewrite(multitask_manifest, 0, score="nan")
    m = ManifestSource(str(multitask_manifest), tasks=TASKS).load()
    assert m.target_problems(m.rows[0]) == [("score", "regression target 'nan' is not a finite number")]
    assert math.isnan(m.targets(m.rows[0], strict=False)["score"])  # type: ignore[arg-type]


def test_the_first_multiclass_task_is_the_first_in_declared_order() -> None:
    specs = [
        TaskSpec(name="tone", kind="regression", names=[]),
        TaskSpec(name="tags", kind="multilabel", names=["a", "b"]),
        TaskSpec(name="second", kind="multiclass", names=["x", "y"]),
        TaskSpec(name="third", kind="multiclass", names=["p"]),
    ]
    first = first_multiclass(specs)
    assert first is not None and first["name"] == "second"
    assert first_multiclass(specs[:2]) is None
