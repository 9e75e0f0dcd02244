"""longdoc's torch dequantisation of GGUF k-quants gives gguf's own float32 weights, bit for bit."""
import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from longdoc.models.gguf_dequant import dequantize  # noqa: E402


def _blocks(qtype: str, rows: int, blocks_per_row: int, float16_at: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Random k-quant rows whose float16 fields hold finite values (random bytes can make inf or NaN)."""
    rng = np.random.default_rng(seed)
    size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[qtype]][1]
    data = rng.integers(0, 256, size=(rows, blocks_per_row, size), dtype=np.uint8)
    for start in float16_at:
        data[:, :, start:start + 2] = rng.normal(0, 0.01, size=(rows, blocks_per_row)).astype(np.float16)[..., None].view(np.uint8)
    return data.reshape(rows, blocks_per_row * size)


@pytest.mark.parametrize("qtype, float16_at", [("Q4_K", (0, 2)), ("Q6_K", (208,))])
def test_k_quants_equal_gguf_numpy_dequantisation(qtype, float16_at):
    qt = gguf.GGMLQuantizationType[qtype]
    # more blocks than one step of the loop, and a row count that does not divide it
    data = _blocks(qtype, rows=37, blocks_per_row=48, float16_at=float16_at)
    ours, theirs = dequantize(data, qt), gguf.quants.dequantize(data, qt)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape == (37, 48 * 256)
    assert np.array_equal(ours, theirs)


def test_other_types_go_to_gguf():
    qt = gguf.GGMLQuantizationType.Q8_0
    data = _blocks("Q8_0", rows=3, blocks_per_row=2, float16_at=(0,))
    assert np.array_equal(dequantize(data, qt), gguf.quants.dequantize(data, qt))
