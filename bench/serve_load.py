"""Load test of `longdoc serve` on loopback: concurrent clients searching (and some asking) while
documents are uploaded and indexed through the API. Bounded: a fixed number of requests per client.

Baseline: the same searches from one client, one at a time, on the same server before the load.
Reports p50/p95/p99 per endpoint, errors, throughput, and whether every uploaded document ended up
searchable (nothing lost). Writes bench/results/serve_load.json.

    python bench/serve_load.py [--clients 8] [--requests 25] [--quick]
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
TOKEN = "bench-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUERIES = ["how to get startup ideas", "why do startups die", "what makes a good programming language",
           "how should founders raise money", "how to hire programmers", "why is Lisp powerful",
           "how do investors decide", "what did the author learn from Viaweb", "how to do great work",
           "why are cities important for ambition", "what is a default alive startup", "how to write essays"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    v = np.array(values) * 1000
    return {"n": len(values), "p50_ms": float(np.percentile(v, 50)), "p95_ms": float(np.percentile(v, 95)),
            "p99_ms": float(np.percentile(v, 99)), "max_ms": float(v.max())}


def serve_essays(essays: list[Path], prefix: str) -> tuple[Path, subprocess.Popen, str]:
    """Index these essays in a temp folder and start `longdoc serve` on it; (folder, server, base URL)
    once the server answers /readyz."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    (work / "corpus").mkdir()
    for p in essays:
        shutil.copy(p, work / "corpus" / p.name)
    subprocess.run([sys.executable, "-m", "longdoc", "index", str(work / "corpus"), "--index", str(work / "index")],
                   check=True, capture_output=True)
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "longdoc", "serve", "--index", str(work / "index"), "--port", str(port)],
                              env={**os.environ, "LONGDOC_API_TOKEN": TOKEN}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited ({server.returncode}); is the `serve` extra installed?")
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.5)
    return work, server, base

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=25, help="requests per client")
    parser.add_argument("--quick", action="store_true", help="4 clients x 10 requests, 3 uploads")
    args = parser.parse_args()
    clients, per_client = (4, 10) if args.quick else (args.clients, args.requests)
    from common import write_result

    from longdoc.evaluation.corpora import corpus_path

    essays = sorted(corpus_path("paul-graham-essays").glob("*.txt"))
    base_docs, uploads = essays[:12], essays[12:15 if args.quick else 22]
    work, server, base = serve_essays(base_docs, "longdoc-load-")
    try:
        with httpx.Client(base_url=base, headers=AUTH, timeout=120) as c:
            baseline = []
            for n, q in enumerate(QUERIES * 2):
                t = time.perf_counter()
                c.post("/v1/search", json={"query": f"{q} (baseline {n})", "k": 5}).raise_for_status()
                baseline.append(time.perf_counter() - t)

        latencies: dict[str, list[float]] = {"search": [], "ask": [], "upload": []}
        errors: list[tuple[str, int, str]] = []
        lock = threading.Lock()

        def client(seed: int):
            rng = random.Random(seed)
            with httpx.Client(base_url=base, headers=AUTH, timeout=180) as c:
                for n in range(per_client):
                    ask = n % 10 == 9  # one in ten is a question to the reader
                    text = f"{rng.choice(QUERIES)} (client {seed}, {n})"  # distinct: no query-cache hits
                    route, body = (("/v1/ask", {"question": text + "?", "max_new_tokens": 16, "k": 3})
                                   if ask else ("/v1/search", {"query": text, "k": 5}))
                    t = time.perf_counter()
                    r = c.post(route, json=body)
                    with lock:
                        if r.status_code == 200:
                            latencies["ask" if ask else "search"].append(time.perf_counter() - t)
                        else:
                            errors.append((route, r.status_code, r.text[:200]))

        def uploader():
            with httpx.Client(base_url=base, headers=AUTH, timeout=60) as c:
                for p in uploads:
                    t = time.perf_counter()
                    r = c.post("/v1/documents", json={"filename": p.name, "text": p.read_text(errors="replace")})
                    with lock:
                        if r.status_code == 202:
                            latencies["upload"].append(time.perf_counter() - t)
                            jobs.append(r.json()["job"]["id"])
                        else:
                            errors.append(("/v1/documents", r.status_code, r.text[:200]))
                    time.sleep(0.5)

        jobs: list[int] = []
        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)] + [threading.Thread(target=uploader)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        load_s = time.perf_counter() - t0
        with httpx.Client(base_url=base, headers=AUTH, timeout=600) as c:
            states = {}
            while True:
                states = {j: c.get(f"/v1/jobs/{j}").json() for j in jobs}
                if all(s["state"] in ("done", "failed") for s in states.values()):
                    break
                time.sleep(0.5)
            status = c.get("/v1/status").json()
            docs = {Path(d["path"]).name for d in c.get("/v1/documents").json()["documents"]}
            batches = status["query_batches"]
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    lost = [p.name for p in uploads if p.name not in docs]
    failed_jobs = [s for s in states.values() if s["state"] != "done"]
    result = {"clients": clients, "requests_per_client": per_client, "uploads": len(uploads),
              "base_documents": len(base_docs), "load_seconds": round(load_s, 1),
              "throughput_rps": round((len(latencies["search"]) + len(latencies["ask"])) / load_s, 2),
              "baseline_search": _pct(baseline), **{k: _pct(v) for k, v in latencies.items()},
              "errors": errors, "failed_jobs": failed_jobs, "lost_documents": lost,
              "documents_after": status["documents"], "query_batches": batches}
    result["search_p50_vs_baseline"] = result["search"]["p50_ms"] / result["baseline_search"]["p50_ms"]
    path = write_result("serve_load-quick" if args.quick else "serve_load", result)
    print(f"{clients} clients x {per_client} requests while {len(uploads)} essays were uploaded and indexed "
          f"({load_s:.0f} s, {result['throughput_rps']} req/s)")
    print(f"{'':14s} {'n':>4s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s}")
    for name in ("baseline_search", "search", "ask", "upload"):
        r = result[name]
        if r["n"]:
            print(f"{name:14s} {r['n']:4d} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['p99_ms']:8.1f}")
    print(f"search p50 under load vs alone: {result['search_p50_vs_baseline']:.2f}x; errors {len(errors)}, "
          f"failed jobs {len(failed_jobs)}, lost documents {lost}; documents after {status['documents']}; "
          f"query batches {batches}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
