# Two commands matter: `make demo` (the main job) and `make test` (the whole suite).
# Both create .venv on first use. torch is pinned to the CPU wheel so a fresh machine never pulls a CUDA build.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

.PHONY: venv demo test bench
venv: $(VENV)/.installed

demo: venv
	$(PY) -m rnnkit demo

# One intra-op thread per process: the tests are many small ops (threads cost more than they save) and the DDP
# test starts processes of its own.
test: venv
	$(PY) -m ruff check .
	OMP_NUM_THREADS=1 $(PY) -m pytest -q

bench: venv
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/reference_lstm.py
