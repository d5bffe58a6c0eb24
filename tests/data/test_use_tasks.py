"""ManifestSource.use_tasks: evaluating a checkpoint reads its tasks and classes, not the manifest's."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmfuse.data import DataError, ManifestSource, Task
from mmfuse.data.manifest.tasks import TaskSpec
from tests.conftest import write_manifest

FOUR = TaskSpec(name="label", kind="multiclass", names=["bird", "cat", "dog", "fish"])


def _manifest(tmp_path: Path, labels: list[str]) -> Path:
    rows = [{"id": f"s{i}", "split": "test", "text": "hi", "label": v} for i, v in enumerate(labels)]
    return write_manifest(tmp_path / "m.csv", rows)


def test_the_checkpoints_classes_replace_the_manifests(tmp_path: Path) -> None:
    source = ManifestSource(str(_manifest(tmp_path, ["dog", "cat", "dog"])))
    assert source.load().tasks[0].names == ["cat", "dog"]  # inferred: what evaluation used to build
    source.use_tasks([FOUR])
    manifest = source.load()
    assert manifest.tasks[0].names == FOUR["names"]
    assert [manifest.targets(r)["label"] for r in manifest.rows] == [2, 1, 2]


def test_an_unlabelled_manifest_loads_and_an_unknown_label_names_its_row(tmp_path: Path) -> None:
    source = ManifestSource(str(_manifest(tmp_path, ["", "", ""])))
    with pytest.raises(DataError, match="empty in every row"):
        source.load()
    source.use_tasks([FOUR])
    assert [t.names for t in source.load().tasks] == [FOUR["names"]]

    source = ManifestSource(str(_manifest(tmp_path, ["dog", "cow"])))
    source.use_tasks([FOUR])
    manifest = source.load()
    with pytest.raises(
        DataError, match=r"row 2, id 's1', column 'label': target 'cow' is not one of the classes"
    ):
        manifest.targets(manifest.rows[1])


def test_declared_columns_are_kept_and_mismatches_refused(tmp_path: Path) -> None:
    cues = Task(name="cues", kind="multilabel", columns=["cue_a", "cue_b"])
    source = ManifestSource("m.csv", tasks=[cues, Task(name="tags", kind="multilabel", columns=["t"])])
    source.use_tasks(
        [
            TaskSpec(name="cues", kind="multilabel", names=["cue_a", "cue_b"]),
            TaskSpec(name="tags", kind="multilabel", names=["red", "blue"]),
            TaskSpec(name="score", kind="regression", names=[]),
        ]
    )
    assert [(t.name, t.target_columns, t.names) for t in source.declared_tasks()] == [
        ("cues", ["cue_a", "cue_b"], ["cue_a", "cue_b"]),
        ("tags", ["t"], ["red", "blue"]),
        ("score", ["score"], []),  # not declared here: read from the column of its name
    ]
    with pytest.raises(
        ValueError, match=r"declares the task\(s\) \['label'\], which the model was not trained"
    ):
        ManifestSource("m.csv").use_tasks([TaskSpec(name="other", kind="regression", names=[])])
    with pytest.raises(ValueError, match="'label' is multiclass in the data but regression in the model"):
        ManifestSource("m.csv").use_tasks([TaskSpec(name="label", kind="regression", names=[])])
