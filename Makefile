# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
LONGDOC := $(VENV)/bin/longdoc
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
DEMO_INDEX ?= demo-index
# The default reader (longdoc/config.py), fetched before the first ask so its download shows on its own.
DEMO_READER ?= qwen2.5-coder-1.5b-instruct

# MRAG's benchmark files are not shipped (longdoc/evaluation/mrag.py); where a checkout has them beside
# it, the tests and benches read them from there.
LONGDOC_MRAG_DIR ?= $(wildcard $(abspath ../shared/data/mrag))
export LONGDOC_MRAG_DIR

BENCH_VENV ?= .venv-bench
BPY := $(BENCH_VENV)/bin/python
BSTAMP := $(BENCH_VENV)/.installed

.PHONY: setup dev-setup demo test test-fast bench bench-quick bench-setup clean

# What running longdoc needs; the tests' extras (Ray, Triton, the service) come on top, so the demo's
# fresh setup skips them. The CPU wheel is pinned in the same install: a bare torch requirement would
# pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0 -e '.[cpu]'
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[cpu,dev]'
	touch $(DEV_STAMP)

setup: $(STAMP)

dev-setup: $(DEV_STAMP)

demo: setup
	$(LONGDOC) models pull all-MiniLM-L6-v2
	$(LONGDOC) models pull $(DEMO_READER)
	$(LONGDOC) index "$$($(LONGDOC) data pull paul-graham-essays)" --index $(DEMO_INDEX)
	$(LONGDOC) status --index $(DEMO_INDEX)
	$(LONGDOC) docs list --index $(DEMO_INDEX)
	$(LONGDOC) search "how to get startup ideas" --index $(DEMO_INDEX) -k 5
	$(LONGDOC) ask "How should you get startup ideas?" "Why did Viaweb use Lisp?" "How did Y Combinator start?" \
		"What should a startup do that doesn't scale?" "What is the capital of Australia?" --index $(DEMO_INDEX)
	$(LONGDOC) kv stats --index $(DEMO_INDEX)

test: dev-setup
	$(PY) -m pytest -q

test-fast: dev-setup
	$(PY) -m pytest -q -m "not slow"

# The benchmark environment: longdoc plus the peers it is compared with (never project dependencies).
$(BSTAMP): pyproject.toml bench/requirements-peers.txt
	python3 -m venv $(BENCH_VENV)
	$(BPY) -m pip install -q --upgrade pip
	$(BPY) -m pip install -q torch==2.13.0
	$(BPY) -m pip install -q -e '.[cpu,serve]' httpx -r bench/requirements-peers.txt
	touch $(BSTAMP)

bench-setup: $(BSTAMP)

# The CPU suite, then bench/results/SUMMARY.md. Hours on 2 cores (full Quoref index, 128K contexts).
bench: bench-setup
	$(BPY) bench/peers.py
	$(BENCH_VENV)/bin/longdoc eval run bench/eval.toml --out bench/results/eval.db
	$(BENCH_VENV)/bin/longdoc eval report bench/results/eval.db --out bench/results/eval
	$(BPY) bench/indexing.py
	$(BPY) bench/search.py
	$(BPY) bench/reader.py
	$(BPY) bench/long_context.py
	$(BPY) bench/decode_speed.py
	$(BPY) bench/serve_load.py
	$(BPY) bench/summary.py

# The same suite on small slices, in under 20 minutes on 2 cores once the models and data are cached.
bench-quick: bench-setup
	$(BPY) bench/peers.py --quick
	rm -f bench/results/eval-quick.db*
	$(BENCH_VENV)/bin/longdoc eval run bench/eval-quick.toml --out bench/results/eval-quick.db
	$(BENCH_VENV)/bin/longdoc eval report bench/results/eval-quick.db --out bench/results/eval-quick
	$(BPY) bench/indexing.py --quick
	$(BPY) bench/search.py --quick
	$(BPY) bench/reader.py --quick
	$(BPY) bench/long_context.py --quick
	$(BPY) bench/serve_load.py --quick
	$(BPY) bench/summary.py --quick

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(DEMO_INDEX) .pytest_cache
