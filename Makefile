# Two entry points, each self-contained on a fresh machine with only python3:
#   make search   set up .venv and run the main job
#   make test     set up .venv and run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SEARCH_CONFIG ?=
RUN_NAME ?= default-$(shell date +%Y%m%d-%H%M%S)

.PHONY: search test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU torch first: the pinned file is local on these machines; a later bare "torch"
	# requirement is then already satisfied and pip never reaches for a CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -c "import torch, sys; sys.exit(0 if torch.version.cuda is None else 'a CUDA torch was installed')"
	touch $(STAMP)

# the default job (mixnas/default_search.yaml) unless SEARCH_CONFIG names another; the run
# folder runs/$(RUN_NAME) gets the records, report.html, pareto.csv and the exported front
search: $(STAMP)
	$(PY) -m mixnas search $(SEARCH_CONFIG) --name $(RUN_NAME)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# every benchmark, each rewriting its own section of docs/benchmarks.md (they read ../shared/data;
# bench/runs.py opens the report in Debian's chromium: apt-get install chromium). Hours on 2 cores.
bench: $(STAMP)
	$(PY) bench/space.py --out docs/benchmarks.md
	$(PY) bench/strategy_overhead.py --out docs/benchmarks.md
	$(PY) bench/search_nb201.py --mode both --out docs/benchmarks.md --figures docs/figures
	$(PY) bench/proxies_nb201.py --dataset cifar10 --batch-size 16 --workers 2 --out docs/benchmarks.md
	$(PY) bench/proxies_hybrid.py --n 60 --steps 150 --workers 2 --out docs/benchmarks.md
	$(PY) bench/latency.py --out docs/benchmarks.md
	$(PY) bench/runs.py --trials 40 --out docs/benchmarks.md
	$(PY) bench/quant.py --n 20 --steps 300 --out docs/benchmarks.md
	$(PY) bench/supernet.py --out docs/benchmarks.md
	$(PY) bench/scaling.py --out docs/benchmarks.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
