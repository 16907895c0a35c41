# mediad: `make run MEDIA=DIR` and `make test` are the whole quick start.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MEDIA  ?=
PYTEST_ARGS ?=

.PHONY: install bytecode run test lint typecheck clean system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[embedded,test]'
	@# systemd-python compiles against libsystemd: only where its headers are.
	if pkg-config --exists libsystemd 2>/dev/null; then $(BIN)/pip install --quiet -e '.[systemd]'; fi
	touch $(STAMP)

## Bytecode for mediad's own modules, as `pip install` of a wheel writes it: an editable
## install has none, and where PYTHONDONTWRITEBYTECODE is set every start (the daemon and
## each worker) would compile them again. Only changed modules are compiled.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q mediad

## System packages for the whole suite (installed when missing, where root can).
system-deps:
	bash .ci/system-deps

install: $(STAMP) bytecode

## run MEDIA=DIR: start mediad on its embedded PostgreSQL, scan DIR, keep extracting.
run: $(STAMP) bytecode
	@test -n "$(MEDIA)" || { echo "usage: make run MEDIA=DIR" >&2; exit 2; }
	$(BIN)/mediad run --scan "$(MEDIA)"

## test: the whole suite (unit, integration on real PostgreSQL, slow end-to-end).
test: system-deps $(STAMP) bytecode lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check mediad tests $(wildcard bench)
	$(BIN)/ruff format --check mediad tests $(wildcard bench)

typecheck: $(STAMP)
	$(BIN)/mypy mediad $(wildcard bench)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
