"""``mmfuse embed --zero_shot``: prompts tokenised by the data and pooled as captions, a known answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from mmfuse.commands.zero_shot import class_labels, prompt_embeddings, prompts_for, unknown_words, zero_shot
from mmfuse.data import ManifestSource, MultimodalDataModule, TextDataModule
from mmfuse.data.manifest.errors import ConfigError
from mmfuse.data.manifest.tasks import Task
from mmfuse.models.zero_shot import nearest_class, zero_shot_report
from mmfuse.types import EncoderOutput
from tests.conftest import write_manifest

COLOURS = ["red", "dark blue", "green"]  # one of two words: prompts of different lengths are padded


class OneHotText(nn.Module):
    """Token ``i`` -> the ``i``-th unit vector; the padding id a huge vector, which only an embedding
    that pools over the padding sees."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        table = torch.eye(vocab_size)
        table[0] = 100.0  # <pad>
        self.table = nn.Parameter(table)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> EncoderOutput:
        return EncoderOutput(self.table[input_ids], attention_mask)  # (B, L, V)


def _data(tmp_path: Path, tasks: list[Task] | None = None) -> MultimodalDataModule:
    rows = []
    for i in range(18):
        colour = COLOURS[i % 3]
        split = "train" if i < 12 else "test"
        rows.append(
            {"id": f"s{i}", "split": split, "text": f"the {colour} dot", "colour": colour, "label": "x"}
        )
    rows.append({"id": "s18", "split": "test", "text": "a dot", "colour": "", "label": "x"})  # no class
    source = ManifestSource(str(write_manifest(tmp_path / "m.csv", rows)), tasks=tasks)
    dm = MultimodalDataModule(source, {"text": TextDataModule(max_length=8, vocab_size=32)})
    dm.setup("predict")
    return dm


def test_prompts_are_tokenised_by_the_data_and_pooled_over_real_tokens(tmp_path: Path) -> None:
    dm = _data(tmp_path)
    text = dm.modalities["text"]
    assert isinstance(text, TextDataModule)
    vocab = text.vocab
    ids = [r.id for r in dm.rows("test", labelled=False)]
    classes = class_labels(dm.manifest, dm.rows("test", labelled=False), ids, "colour")
    assert classes.names == ["dark blue", "green", "red"]  # learnt from the column, natural order
    assert classes.labels.tolist() == [2, 0, 1, 2, 0, 1, -1]  # s12.. s17, and s18 without a class
    prompts = prompts_for(classes.names, "the {} dot")
    encoder = OneHotText(len(vocab))
    emb = prompt_embeddings(encoder, text, dm.manifest.root, prompts)  # (K, V)
    for k, name in enumerate(classes.names):  # the mean of the prompt's words' unit vectors, pads left out
        words = ["the", *name.split(), "dot"]
        expected = torch.zeros(len(vocab))
        for w in words:
            expected[vocab.index(w)] += 1 / len(words)
        torch.testing.assert_close(emb[k], expected)

    # images embedded as their class word's unit vector plus a little noise: every one is right
    rng = np.random.default_rng(0)
    image = np.stack([np.eye(len(vocab))[vocab.index(COLOURS[int(i[1:]) % 3].split()[-1])] for i in ids])
    arrays = {"image": (image + 0.01 * rng.random(image.shape)).astype(np.float32)}
    arrays["image_present"] = np.array([True] * 6 + [False])
    [(modality, report)] = zero_shot(arrays, classes, emb, ["image"]).items()
    assert modality == "image" and report["samples"] == 6 and report["accuracy"] == 1.0
    assert report["per_class"] == {n: {"samples": 2, "correct": 2} for n in classes.names}
    # the prompts in another order than the classes (a broken implementation): most are wrong
    wrong = zero_shot(arrays, classes, emb[[1, 2, 0]], ["image"])["image"]
    assert wrong["accuracy"] == 0.0
    assert unknown_words(text, dm.manifest.root, ["red", "purple"]) == ["purple"]


def test_a_task_keeps_its_class_order(tmp_path: Path) -> None:
    task = Task(name="hue", columns=["colour"], classes=["red", "green", "dark blue"])
    dm = _data(tmp_path, tasks=[task])
    rows = dm.rows("test", labelled=False)
    by_task = class_labels(dm.manifest, rows, ["s12", "s13", "s14"], None)  # default: the first task
    assert by_task.names == ["red", "green", "dark blue"] and by_task.labels.tolist() == [0, 2, 1]
    assert class_labels(dm.manifest, rows, ["s12"], "colour").names == by_task.names  # its column: the task
    with pytest.raises(ConfigError, match=r"no multiclass task .* or column"):
        class_labels(dm.manifest, rows, ["s12"], "shade")
    with pytest.raises(ConfigError, match="exactly one"):
        prompts_for(["red"], "a picture")


def test_report_counts_and_confusion() -> None:
    emb = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.1], [0.5, 0.4]])
    classes = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    predicted = nearest_class(emb, classes)
    assert predicted.tolist() == [0, 1, 0, 0]  # by cosine: [0.5, 0.4] is nearer class 0
    report = zero_shot_report(predicted, torch.tensor([0, 1, 1, -1]), ["a", "b"])
    assert report["samples"] == 3 and report["accuracy"] == pytest.approx(2 / 3)
    assert report["confusion"] == [[1, 0], [1, 1]]  # [true][predicted]
    assert report["per_class"] == {"a": {"samples": 1, "correct": 1}, "b": {"samples": 2, "correct": 1}}
