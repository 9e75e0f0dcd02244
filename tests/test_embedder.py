import numpy as np
import pytest
import torch

from longdoc.indexing.head_weights import head_weights

TEXTS = [
    "The keeper wound the clockwork that turned the lens every four hours.",
    "Spring tides have nothing to do with the season.",
    "Fog signals warn ships when the light cannot be seen from the sea, and the diaphone was the loudest.",
    "Short.",
]


@pytest.mark.slow
def test_head_vectors_are_attention_probabilities_times_values_pooled_by_mean_max_and_first_token(embedder):
    """Recompute the last layer's per-head attention output from an eager forward pass, and pool it over
    each text's own tokens (padding left out) three ways, pooling-major: mean, max, the [CLS] token's."""
    from transformers import AutoModel

    eager = AutoModel.from_pretrained(embedder.source, attn_implementation="eager").eval()
    features = embedder.model.tokenize(TEXTS)
    H, d = embedder.model_heads, embedder.head_dim
    with torch.no_grad():
        out = eager(**features, output_attentions=True, output_hidden_states=True)
        probs = out.attentions[-1]  # (B, H, T, T)
        layer_input = out.hidden_states[-2]  # input of the last layer
        value = eager.encoder.layer[-1].attention.self.value(layer_input)  # (B, T, H*d)
        B, T, _ = value.shape
        value = value.view(B, T, H, d).transpose(1, 2)  # (B, H, T, d)
        per_token = probs @ value  # (B, H, T, d)
    lengths = features["attention_mask"].sum(1)
    expected = np.zeros((len(TEXTS), 3 * H, d), np.float32)
    for i, n in enumerate(lengths.tolist()):
        own = per_token[i, :, :n].numpy()  # (H, n, d): this text's tokens only
        expected[i] = np.concatenate([own.mean(1), own.max(1), own[:, 0]])
    assert embedder.pooling == ("mean", "max", "first") and embedder.heads == 3 * H
    _, heads = embedder.encode(TEXTS)
    assert heads.shape == (len(TEXTS), 36, 32)
    np.testing.assert_allclose(heads, expected, atol=1e-5, rtol=1e-4)
    assert not np.allclose(heads[:, :H], heads[:, H:2 * H], atol=1e-3)  # the poolings differ


@pytest.mark.slow
def test_an_embedder_without_pooling_captures_no_head_vectors_and_gives_the_same_embeddings(embedder):
    """An index without head vectors (the default) embeds with pooling=None: no hook on the attention
    layer, an empty head axis, the same dense vectors."""
    from longdoc.indexing.embedder import MultiHeadEmbedder

    plain = MultiHeadEmbedder("all-MiniLM-L6-v2", device="cpu", batch_size=16, pooling=None)
    dense, heads = plain.encode(TEXTS)
    assert plain.heads == 0 and heads.shape == (len(TEXTS), 0, 32) and plain.pooling == ()
    assert plain.fingerprint == embedder.fingerprint
    np.testing.assert_allclose(dense, embedder.encode(TEXTS)[0], atol=1e-6)
    assert not plain.model.model.encoder.layer[-1].attention.output.dense._forward_pre_hooks


def test_head_pooling_is_checked_when_settings_are_made():
    from longdoc.config import Settings
    from longdoc.errors import LongdocError

    assert Settings().head_pooling == "mean,max,first"
    assert Settings(head_pooling="max, mean").head_pooling == "max, mean"
    for bad in ("", "mean,mean", "median", "mean;max"):
        with pytest.raises(LongdocError, match="head_pooling"):
            Settings(head_pooling=bad)


@pytest.mark.slow
def test_dense_vectors_match_sentence_transformers_encode(embedder):
    """longdoc runs the saved modules through transformers alone: the package it replaces is the reference."""
    from sentence_transformers import SentenceTransformer

    dense, _ = embedder.encode(TEXTS + ["  " + TEXTS[1] * 40])  # stripped, and truncated at 256 tokens
    reference = SentenceTransformer(embedder.source, device="cpu").encode(TEXTS + ["  " + TEXTS[1] * 40])
    np.testing.assert_allclose(dense, reference, atol=1e-5)
    # Input order is kept although batches are length-sorted.
    one_by_one = np.stack([embedder.encode([t])[0][0] for t in TEXTS])
    np.testing.assert_allclose(dense[:len(TEXTS)], one_by_one, atol=1e-5)


@pytest.mark.slow
def test_the_bert_tokenizer_gives_transformers_tokens_offsets_and_batches(embedder, tokenizer):
    """The chunker's token counts and offsets, and the encoder's padded and truncated batches, are
    those of transformers' tokenizer for the same tokenizer.json (models/bert.py)."""
    texts = TEXTS + ["Ünïcödé — naïve café, 日本語のテキスト, emoji 🚀 and\ttabs\n\nnewlines", "word " * 300, ""]
    ours = embedder.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    theirs = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    assert ours["input_ids"] == theirs["input_ids"]
    assert [[tuple(o) for o in row] for row in ours["offset_mapping"]] == \
           [[tuple(o) for o in row] for row in theirs["offset_mapping"]]
    batch = embedder.tokenizer.tensors(texts, 256)
    reference = tokenizer(texts, padding=True, truncation="longest_first", max_length=256, return_tensors="pt")
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert torch.equal(batch[key], reference[key]), key


@pytest.mark.slow
def test_loading_the_embedder_does_not_import_sentence_transformers():
    """It would add ~115 MB of RSS and ~1.6 s to every index and search (models/sentence_encoder.py);
    transformers, 3-4 s (models/bert.py runs BERT-family embedders without it)."""
    import subprocess
    import sys

    code = ("import sys; from longdoc.indexing.embedder import MultiHeadEmbedder; e = MultiHeadEmbedder('default', 'cpu'); "
            "e.encode(['x']); print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('sentence_transformers', 'sklearn', 'pandas', 'transformers')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_head_weights_hand_computed():
    # Head 0: two orthogonal unit vectors scaled by 2 -> mean norm 2, mean pairwise cosine distance 1 -> 2.
    # Head 1: identical vectors of norm 3 -> distance 0 -> weight 0.
    heads = np.array([
        [[2.0, 0.0], [3.0, 0.0]],
        [[0.0, 2.0], [3.0, 0.0]],
    ], np.float32)
    np.testing.assert_allclose(head_weights(heads), [2.0, 0.0], atol=1e-6)


def test_head_weights_opposite_vectors_have_distance_two():
    heads = np.array([[[1.0, 0.0]], [[-3.0, 0.0]]], np.float32)  # norms 1 and 3, cosine -1
    np.testing.assert_allclose(head_weights(heads), [2.0 * 2.0], atol=1e-6)


def _variant(tmp_path, embedder, modules=None, pooling=None):
    """The packaged embedder's files in a new directory (weights linked), with its module list or pooling
    config changed."""
    import json
    import shutil
    from pathlib import Path

    src, dst = Path(embedder.source), tmp_path / "variant"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors"))
    (dst / "model.safetensors").symlink_to(src / "model.safetensors")
    if modules is not None:
        (dst / "modules.json").write_text(json.dumps(modules))
    if pooling is not None:
        config = json.loads((dst / "1_Pooling" / "config.json").read_text())
        config.update({f"pooling_mode_{m}": False for m in ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens")})
        config[f"pooling_mode_{pooling}"] = True
        (dst / "1_Pooling" / "config.json").write_text(json.dumps(config))
    return str(dst)


@pytest.mark.slow
@pytest.mark.parametrize("pooling", ["cls_token", "max_tokens", "mean_sqrt_len_tokens"])
def test_other_poolings_and_no_normalize_match_sentence_transformers(tmp_path, embedder, pooling):
    from sentence_transformers import SentenceTransformer

    from longdoc.models.sentence_encoder import SentenceEncoder

    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    path = _variant(tmp_path, embedder, modules, pooling)
    encoder = SentenceEncoder(path, "cpu")
    ours = encoder(encoder.tokenize(TEXTS)).numpy()
    reference = SentenceTransformer(path, device="cpu").encode(TEXTS)
    np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=1e-4)
    assert abs(np.linalg.norm(ours[0]) - 1) > 1e-3  # not normalised without the Normalize module


def test_an_embedder_with_modules_longdoc_does_not_run_is_refused_in_one_line(tmp_path, embedder):
    from longdoc.errors import ModelError
    from longdoc.models.sentence_encoder import SentenceEncoder

    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]
    with pytest.raises(ModelError, match=r"modules \['Transformer', 'Pooling', 'Dense'\] are not supported.*Dense"):
        SentenceEncoder(_variant(tmp_path, embedder, modules), "cpu")
