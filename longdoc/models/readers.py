"""Reader LLMs: packaged GGUFs (one wheel or part wheels, converted once to safetensors), GGUF files, HF ids, local dirs."""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path

from ..config import PRECISIONS
from ..errors import ModelError
from .assemble import assemble_parts
from .cache import cache_dir
from .registry import KNOWN_MODELS


@contextlib.contextmanager
def _fast_gguf_loading():
    """Two speed-ups for transformers' GGUF loading, within this block only (it imports both names from
    gguf at call time):
    - it reads a GGUF's metadata three times (config, weights, tokenizer), and gguf's reader parses every
      vocabulary string through numpy views: 12 s each time for Qwen2.5's 151K tokens. One reader per file
      serves all three (they only read it);
    - k-quant weights are dequantised in torch (gguf_dequant): 5 s against 21 s for the 1.5B."""
    import gguf

    from .gguf_dequant import dequantize

    original_reader, original_dequantize, readers = gguf.GGUFReader, gguf.dequantize, {}

    def shared(path, mode="r"):
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = original_reader(path, mode)
        return readers[key]

    gguf.GGUFReader, gguf.dequantize = shared, dequantize
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.dequantize = original_reader, original_dequantize


def _convert_gguf(gguf_file: Path, dest: Path) -> Path:
    """Dequantise a GGUF into a safetensors checkpoint with transformers (about 40 s for the 1.5B)."""
    from filelock import FileLock
    from rich.console import Console

    with FileLock(str(dest) + ".lock"):
        if (dest / "config.json").exists():
            return dest
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        with Console(stderr=True).status(f"converting {gguf_file.name} to safetensors (once; about a minute) ..."), \
                _fast_gguf_loading():
            model = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
            tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
            # The weights are dequantised already; drop the quantiser so save_pretrained writes plain tensors.
            model.hf_quantizer = None
            model.is_quantized = False
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            # bfloat16 halves the file and the load. The GGUF's 4- to 8-bit weights lose nothing that
            # matters to its 8-bit mantissa, and the CPU default (int8) quantises far more coarsely anyway.
            model = model.to(torch.bfloat16)
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
        gguf = assemble_parts(info.name, info.wheels, info.member, info.joined, info.sha256)
        return str(_convert_gguf(gguf, converted))
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"{path}: GGUF file not found")
        digest = hashlib.sha256(f"{path.resolve()}:{path.stat().st_size}:{path.stat().st_mtime_ns}".encode()).hexdigest()[:16]
        return str(_convert_gguf(path.resolve(), cache_dir("models") / f"{path.stem}-{digest}"))
    if path.exists():
        return str(path)
    return name  # a Hugging Face id: transformers honours HF_HUB_OFFLINE itself


def resolve_precision(precision: str, device: str) -> str:
    """auto: int8 weights on a CPU (on 2 cores the 0.5B decodes at 45 ms/token against 155 in float32, and
    bench/gold_reader.py gives the same gold-passage answers: README), bfloat16 on a GPU that has it,
    else float16."""
    if precision not in PRECISIONS:
        raise ModelError(f"unknown reader precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if not str(device).startswith("cuda"):
        return "int8"
    import torch

    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


def load_reader(name: str, device: str = "cpu", precision: str = "float32"):
    """(model, tokenizer) for a causal LM, in eval mode, at `precision` (see resolve_precision)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    precision = resolve_precision(precision, device)
    if precision == "int8" and str(device).startswith("cuda"):
        raise ModelError("int8 reader weights run on the CPU only; on a GPU use bfloat16 or float16")
    source = reader_path(name)
    # int8 quantises from bfloat16 weights: half the bytes to read, and the same int8 weights to within
    # rounding far below an int8 step
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "int8": torch.bfloat16}.get(precision, torch.float32)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except OSError as e:
        raise ModelError(f"cannot load reader {name!r} from {source}: {e}") from None
    model = model.to(device).eval()
    if precision == "int8":
        from .int8 import release_freed_memory

        _quantize_cached(model, source)
        for param in model.parameters():  # what is left (embeddings, norms) runs in float32, as measured
            param.data = param.data.float()
        release_freed_memory()
    return model, tokenizer


INT8_FORMAT = 1  # bump when Int8Linear's quantisation changes: older saved tensors are then ignored


def _quantize_cached(model, source: str) -> None:
    """Quantise `model` to int8 weights, saved once per checkpoint directory in the cache: later loads read
    the int8 tensors (1.5 GB for the 1.5B) instead of quantising 3 GB of bfloat16 again (30 s here)."""
    from filelock import FileLock
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import save_file

    from .int8 import int8_tensors, quantize_int8

    weights = sorted(Path(source).glob("*.safetensors")) if Path(source).is_dir() else []
    if not weights:  # a hub id resolved inside transformers: quantise each time
        quantize_int8(model)
        return
    key = hashlib.sha256(f"{INT8_FORMAT}:{Path(source).resolve()}".encode())
    for w in weights:  # a changed checkpoint is a new key
        key.update(f"{w.name}:{w.stat().st_size}:{w.stat().st_mtime_ns}".encode())
    path = cache_dir("int8") / f"{Path(source).name[:48]}-{key.hexdigest()[:16]}.safetensors"
    with FileLock(str(path) + ".lock"):
        if path.exists():
            try:
                # each tensor copied: safetensors hands them out 8 bytes past a 64-byte boundary, and the
                # int8 kernel's vector loads crash on that
                with safe_open(str(path), "pt") as f:
                    quantize_int8(model, {name: f.get_tensor(name).clone() for name in f.keys()})
                return
            except (SafetensorError, OSError, KeyError):  # damaged or unreadable: quantise again
                path.unlink(missing_ok=True)
        quantize_int8(model)
        tmp = path.with_name(path.name + ".part")
        save_file({k: v.contiguous() for k, v in int8_tensors(model).items()}, str(tmp))
        os.replace(tmp, path)
