import numpy as np
import pytest
import torch

from longdoc.indexing.embedder import head_weights

TEXTS = [
    "The keeper wound the clockwork that turned the lens every four hours.",
    "Spring tides have nothing to do with the season.",
    "Fog signals warn ships when the light cannot be seen from the sea, and the diaphone was the loudest.",
    "Short.",
]


@pytest.mark.slow
def test_head_vectors_equal_attention_probabilities_times_values(embedder):
    """Recompute the last layer's per-head attention output from an eager forward pass."""
    from transformers import AutoModel

    eager = AutoModel.from_pretrained(embedder.source, attn_implementation="eager").eval()
    features = embedder.tokenizer(TEXTS, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        out = eager(**features, output_attentions=True, output_hidden_states=True)
        probs = out.attentions[-1]  # (B, H, T, T)
        layer_input = out.hidden_states[-2]  # input of the last layer
        value = eager.encoder.layer[-1].attention.self.value(layer_input)  # (B, T, H*d)
        B, T, _ = value.shape
        value = value.view(B, T, embedder.heads, embedder.head_dim).transpose(1, 2)  # (B, H, T, d)
        per_token = probs @ value  # (B, H, T, d)
        mask = features["attention_mask"][:, None, :, None].float()
        expected = (per_token * mask).sum(2) / mask.sum(2)  # (B, H, d)
    _, heads = embedder.encode(TEXTS)
    assert heads.shape == (len(TEXTS), 12, 32)
    np.testing.assert_allclose(heads, expected.numpy(), atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_dense_vectors_match_sentence_transformers_encode(embedder):
    dense, _ = embedder.encode(TEXTS)
    reference = embedder.model.encode(TEXTS, convert_to_numpy=True)
    np.testing.assert_allclose(dense, reference, atol=1e-5)
    # Input order is kept although batches are length-sorted.
    one_by_one = np.stack([embedder.encode([t])[0][0] for t in TEXTS])
    np.testing.assert_allclose(dense, one_by_one, atol=1e-5)


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
