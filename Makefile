# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
LONGDOC := $(VENV)/bin/longdoc
STAMP := $(VENV)/.installed
DEMO_INDEX ?= demo-index

.PHONY: setup demo test test-fast bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU wheel first: a bare torch requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[cpu,dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(LONGDOC) models pull all-MiniLM-L6-v2
	$(LONGDOC) models pull smollm2-135m-instruct
	$(LONGDOC) index "$$($(LONGDOC) data pull paul-graham-essays)" --index $(DEMO_INDEX)
	$(LONGDOC) status --index $(DEMO_INDEX)
	$(LONGDOC) docs list --index $(DEMO_INDEX)
	$(LONGDOC) search "how to get startup ideas" --index $(DEMO_INDEX) -k 5
	$(LONGDOC) ask "How should you get startup ideas?" --index $(DEMO_INDEX)
	$(LONGDOC) ask "Why did Viaweb use Lisp?" --index $(DEMO_INDEX)
	$(LONGDOC) ask "What is the capital of Australia?" --index $(DEMO_INDEX)
	$(LONGDOC) kv stats --index $(DEMO_INDEX)

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) bench/indexing.py
	$(PY) bench/reader.py

clean:
	rm -rf $(VENV) $(DEMO_INDEX) .pytest_cache
