"""The reader on a GPU (issue 13, item 6): TTFT and ms/token, full prefill against Block-Attention (the
default: focus re-encoded in the question's pass), at 5/20/50 passages of ~256 words, KV stored first.

The weights cannot travel to a lent GPU (64 MiB a call), and speed does not depend on them: the model is
the default reader's real config with random weights, saved once and loaded through longdoc's own Reader
(so the precision it picks on a GPU, bfloat16 or float16, is the one measured). Two steps:

    python bench/gpu_reader.py --prepare gpu-reader-model    # here: config and tokenizer, ~11 MB
    python bench/gpu_reader.py --model-dir gpu-reader-model  # on the GPU (carry gpu-reader-model)

Goals: <= 10 ms/token, block TTFT <= 60 ms at 50 passages. `--device cpu --layers 2` checks the script
on a CPU. The passages are this repository's own prose (its README), so no corpus is needed.

`--long 131072` then times long context (issue 15): `landmark` and `retrieval` over that many tokens of
stored passages against `full` at 4K, each answer's ms/token the decode step the reader really runs."""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from common import write_result  # noqa: E402

from longdoc.config import ReaderSettings  # noqa: E402
from longdoc.reader.reader import Reader  # noqa: E402
from longdoc.retrieval.hit import Hit  # noqa: E402

QUESTION = "Which attention backend reuses the KV of each passage, and what does it re-encode?"
FILES = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]


def prepare(out: Path, reader: str) -> None:
    from longdoc.models.readers import reader_path

    source = Path(reader_path(reader))
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if (source / name).exists():
            shutil.copy2(source / name, out / name)
    print(f"wrote {out} from {source}")


def random_model(model_dir: Path, work: Path, layers: int | None, device: str) -> Path:
    """The config's model with random weights (seed 0, initialised on `device`: fast on a GPU), saved beside
    its tokenizer for Reader to load."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    if layers:
        config.num_hidden_layers = layers
        if getattr(config, "layer_types", None):
            config.layer_types = config.layer_types[:layers]
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    out = work / "model"
    model.save_pretrained(out)
    del model
    for name in FILES[1:]:
        if (model_dir / name).exists():
            shutil.copy2(model_dir / name, out / name)
    return out


def passages(n: int, words: int = 256) -> list[Hit]:
    """n reading windows of `words` words, each with a focus (the matched chunk) in its middle."""
    tokens = (ROOT / "README.md").read_text(encoding="utf-8").split()
    hits = []
    for i in range(n):
        body = " ".join(tokens[(i * words) % max(1, len(tokens) - words):][:words])
        mid = len(body) // 2
        hits.append(Hit(chunk_id=i, doc_id=i, path=f"passage-{i}.md", title=f"Passage {i}", section=(),
                        char_start=0, char_end=len(body), page=None, page_end=None, text=body, score=1.0,
                        focus=(mid - 200, mid + 200)))
    return hits


def timed(reader: Reader, hits: list[Hit], attention: str, repeats: int, new_tokens: int) -> dict:
    runs = []
    for _ in range(repeats):
        if reader.model.device.startswith("cuda"):
            torch.cuda.synchronize()
        runs.append(reader.answer(QUESTION, hits, attention, max_new_tokens=new_tokens).timings)
    per_token = [t["ms_per_token"] for t in runs if t["ms_per_token"]]
    return {"ttft_ms": statistics.median(1000 * t["ttft_s"] for t in runs),
            "ms_per_token": statistics.median(per_token) if per_token else None,
            "new_tokens": runs[0]["new_tokens"], "prompt_tokens": runs[0]["prompt_tokens"],
            "keys_read_share": runs[0].get("keys_read_share")}


def long_context(reader: Reader, tokens: int, repeats: int, new_tokens: int) -> list[dict]:
    """full over ~4K tokens against the sparse backends over `tokens`, passages in reading order."""
    per_passage = reader.prompt("", passages(1)).length - reader.prompt("", []).length
    rows = []
    for attention, n_tokens in (("full", 4096), ("landmark", tokens), ("retrieval", tokens)):
        hits = passages(max(1, n_tokens // per_passage))
        t0 = time.perf_counter()
        reader.fill_kv(hits)
        fill_s = time.perf_counter() - t0
        first = timed(reader, hits, attention, 1, 2)  # builds the memory (rotation, clustering)
        row = {"attention": attention, "passages": len(hits), "kv_fill_s": fill_s, "first_ttft_ms": first["ttft_ms"],
               **timed(reader, hits, attention, repeats, new_tokens)}
        if torch.cuda.is_available():
            row["max_memory_allocated_gb"] = torch.cuda.max_memory_allocated() / 2**30
        rows.append(row)
        print(f"long context {attention:9s} {row['prompt_tokens']:>7} tokens | first TTFT {row['first_ttft_ms']:8.1f} ms"
              f"  TTFT {row['ttft_ms']:7.1f} ms | {row['ms_per_token'] or 0:6.1f} ms/token | KV fill {fill_s:.1f} s",
              flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prepare", type=Path, help="write the config and tokenizer here, then stop")
    parser.add_argument("--reader", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--model-dir", type=Path, default=Path("gpu-reader-model"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--counts", default="5,20,50")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--layers", type=int, default=None, help="fewer layers (a CPU check of the script)")
    parser.add_argument("--long", type=int, default=0, help="also time long context over this many tokens")
    args = parser.parse_args()
    if args.prepare:
        return prepare(args.prepare, args.reader)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = random_model(args.model_dir, Path(tmp), args.layers, args.device)
        reader = Reader(str(path), Path(tmp) / "kv", ReaderSettings(), args.device)
        reader.model.stop_ids = set()  # random weights: decode the full budget so ms/token is measured
        print(f"model ready in {time.perf_counter() - t0:.0f} s: {reader.model.precision} on {reader.model.device}")
        rows = []
        for n in [int(c) for c in args.counts.split(",")]:
            hits = passages(n)
            reader.fill_kv(hits)  # stored first, as `index --kv` does
            for attention in ("full", "block"):
                timed(reader, hits, attention, 1, 2)  # warm-up (kernels, allocator)
            row = {"passages": n, **{a: timed(reader, hits, a, args.repeats, args.new_tokens) for a in ("full", "block")}}
            row["ttft_speedup"] = row["full"]["ttft_ms"] / row["block"]["ttft_ms"]
            rows.append(row)
            print(f"{n:>3} passages {row['full']['prompt_tokens']:>6} tokens | TTFT full {row['full']['ttft_ms']:8.1f} ms"
                  f"  block {row['block']['ttft_ms']:7.1f} ms ({row['ttft_speedup']:5.1f}x) | ms/token full "
                  f"{row['full']['ms_per_token'] or 0:6.1f}  block {row['block']['ms_per_token'] or 0:6.1f}", flush=True)
        long_rows = long_context(reader, args.long, args.repeats, args.new_tokens) if args.long else []
    name = "gpu_reader" + ("" if args.device.startswith("cuda") else f"-{args.device}")
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    print(f"wrote {write_result(name, {'reader_config': args.reader, 'random_weights': True, 'layers': args.layers, 'gpu': gpu, 'precision': reader.model.precision, 'reencode_focus': reader.settings.reencode_focus, 'goals': 'ms/token <= 10, block TTFT <= 60 ms at 50 passages', 'rows': rows, 'long_context': long_rows})}")


if __name__ == "__main__":
    main()
