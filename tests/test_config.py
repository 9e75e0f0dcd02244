import pytest

from longdoc.config import Settings, load_settings, settings_requested
from longdoc.errors import LongdocError


def test_precedence_file_then_env_then_overrides(tmp_path, monkeypatch):
    cfg = tmp_path / "longdoc.toml"
    cfg.write_text('batch_size = 8\nembedder = "my-embedder"\n[chunk]\ntokens = 96\noverlap = 12\n')
    s = load_settings(cfg)
    assert (s.batch_size, s.embedder, s.chunk.tokens, s.chunk.overlap) == (8, "my-embedder", 96, 12)
    monkeypatch.setenv("LONGDOC_CHUNK_TOKENS", "200")
    assert load_settings(cfg).chunk.tokens == 200
    assert load_settings(cfg, chunk_tokens=50).chunk.tokens == 50
    assert settings_requested(None)  # the env var counts as a request


def test_booleans_from_toml_and_the_environment(tmp_path, monkeypatch):
    cfg = tmp_path / "longdoc.toml"
    cfg.write_text("head_vectors = true\n")
    assert load_settings(cfg).head_vectors is True and Settings().head_vectors is False
    for text, value in [("0", False), ("yes", True), ("False", False)]:
        monkeypatch.setenv("LONGDOC_HEAD_VECTORS", text)
        assert load_settings().head_vectors is value


def test_defaults_and_no_request(monkeypatch):
    for name in ("LONGDOC_CHUNK_TOKENS", "LONGDOC_BATCH_SIZE", "LONGDOC_READER", "LONGDOC_ANSWER_PRECISION"):
        monkeypatch.delenv(name, raising=False)
    assert load_settings() == Settings()
    assert not settings_requested(None, embedder=None)


@pytest.mark.parametrize("text,match", [
    ("chunk_size = 3\n", "unknown setting"),
    ("batch_size = 'many'\n", "cannot read"),
    ("[chunk]\ntokens = 4\n", "at least 16"),
    ("this is = = not toml", "cannot read settings"),
    ("[answer]\nattention = 'sliding'\n", "unknown attention"),
    ("[answer]\nlandmark_block = 48\n", "power of two"),
    ("[answer]\ncluster_size = 8\n", "power of two of at least 16"),
    ("[answer]\nblock_rep = 'median'\n", "unknown block_rep"),
    ("[answer]\nsparse_keys = 0\n", "sparse_keys, memory_gap"),
    ("[answer]\nexact_up_to = -1\n", "exact_up_to, scan_context and scan_lexical at least 0"),
    ("[answer]\nscan_lexical = -0.5\n", "exact_up_to, scan_context and scan_lexical at least 0"),
    ("[answer]\nscan_keep = 0\n", "scan_keep must be at least 1"),
    ("[answer]\nlong_attention = \"auto\"\n", "choose one of landmark, retrieval, scan"),
    ("[answer]\nlong_attention = \"block\"\n", "unknown long_attention"),
    ("[answer]\nmemory_layout = \"scattered\"\n", "unknown memory_layout"),
    ("[answer]\nkernels = 'cuda'\n", "unknown kernels"),
    ("[answer]\nsparse_pin = \"question\"\n", "unknown sparse_pin"),
    ("head_vectors = 'sometimes'\n", "setting 'head_vectors': cannot read 'sometimes' as bool"),
])
def test_bad_settings_are_named(tmp_path, text, match):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(LongdocError, match=match):
        load_settings(cfg)
