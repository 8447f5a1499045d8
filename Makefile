# sluice developer entry points. A fresh machine needs only pyenv's Python 3.13.0 (or python3.13
# on PATH), make, git and binutils' strip:
#   make demo    .venv from the lock, then the end-to-end demo on the embedded local cloud
#   make test    lint + sam build (with the size check) + every test (unit, functional, e2e, artifact)
# Other targets: venv sam-venv checkov-venv lint checkov lint-format format build pytest lock lock-upgrade clean help.
# ARCH=x86_64|arm64 picks the Lambda architecture (template parameter + layer wheels).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

ARCH ?= x86_64
REGION ?= us-east-1
SIZE_BUDGET_MIB ?= 200
PYTEST_ARGS ?=

# ---------------------------------------------------------------- interpreters
# Python 3.13 = the Lambda runtime's minor version: the venvs, sam's python builder and the layer
# Makefiles (bytecode is version-specific) all use it. pyenv's 3.13.0 first, then python3.13 on
# PATH (pyenv's shim only works when 3.13.0 is selected, hence the check that it runs).
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)
BASE_PYTHON ?= $(firstword $(foreach p,$(PYENV_ROOT)/versions/3.13.0/bin/python3.13 $(shell command -v python3.13 2>/dev/null),\
  $(shell $(p) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null && echo $(p))))
ifeq ($(BASE_PYTHON),)
  $(error Python 3.13 not found: install it with `pyenv install 3.13.0` (or put python3.13 on PATH))
endif
PYTHON_BIN_DIR := $(abspath $(dir $(BASE_PYTHON)))
export PATH := $(PYTHON_BIN_DIR):$(PATH)

VENV := .venv
SAM_VENV := .sam-venv
CHECKOV_VENV := .checkov-venv
PY := $(VENV)/bin/python
SAM := $(SAM_VENV)/bin/sam
VENV_STAMP := $(VENV)/.installed
SAM_STAMP := $(SAM_VENV)/.installed
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
SPARK_VENV := .spark-venv
SPARK_STAMP := $(SPARK_VENV)/.installed
PIP := -m pip install --quiet --disable-pip-version-check
T := tools/timed

export SLUICE_ARCH := $(ARCH)
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= $(REGION)

# uv only resolves the locks; installs use pip from the lock files.
UV_VERSION := 0.13.8
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --python-version 3.13 --python-platform x86_64-manylinux_2_28 \
  --generate-hashes --custom-compile-command "make lock" $(UV_FLAGS)

.PHONY: help venv sam-venv checkov-venv spark-venv demo lint checkov format build pytest test lock lock-upgrade clean

help:
	@sed -n '1,7p' Makefile | sed 's/^# \{0,1\}//'

# ---------------------------------------------------------------- environments
venv: $(VENV_STAMP)

$(VENV_STAMP): requirements/dev.lock pyproject.toml
	@if [[ -x $(PY) ]] && ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))'; then \
	  echo "$(VENV) is not Python 3.13: recreating it"; rm -rf $(VENV); fi
	[[ -x $(PY) ]] || $(BASE_PYTHON) -m venv $(VENV)
	$(T) venv-install $(PY) $(PIP) -r requirements/dev.lock
	$(PY) $(PIP) --no-deps -e .
	touch $@

sam-venv: $(SAM_STAMP)

$(SAM_STAMP): requirements/sam.txt
	[[ -x $(SAM_VENV)/bin/python ]] || $(BASE_PYTHON) -m venv $(SAM_VENV)
	$(T) sam-install $(SAM_VENV)/bin/python $(PIP) -r requirements/sam.txt
	touch $@

# checkov pins its own dependencies (they conflict with the dev tools'): a venv of its own.
checkov-venv: $(CHECKOV_STAMP)

$(CHECKOV_STAMP): requirements/checkov.txt
	[[ -x $(CHECKOV_VENV)/bin/python ]] || $(BASE_PYTHON) -m venv $(CHECKOV_VENV)
	$(T) checkov-install $(CHECKOV_VENV)/bin/python $(PIP) -r requirements/checkov.txt
	touch $@

# Optional: PySpark (about 450 MB, needs Java 17+) for tests/unit/test_hive_readers.py's Spark reader,
# in its own venv so that .venv stays small; the test skips without it.
spark-venv: $(SPARK_STAMP)

$(SPARK_STAMP): requirements/spark.txt
	[[ -x $(SPARK_VENV)/bin/python ]] || $(BASE_PYTHON) -m venv $(SPARK_VENV)
	$(T) spark-install $(SPARK_VENV)/bin/python $(PIP) -r requirements/spark.txt
	touch $@

demo: venv
	$(VENV)/bin/sluice demo

# ---------------------------------------------------------------- checks
# Every check runs (make -k) and lint fails at the end if any failed. `make format` fixes format and
# lint findings that ruff can fix.
LINT_STEPS := lint-ruff lint-format lint-mypy lint-cfn lint-asl lint-sam lint-checkov
.PHONY: $(LINT_STEPS) lint-format

lint: venv sam-venv checkov-venv
	@$(MAKE) -k $(LINT_STEPS)

lint-ruff:
	$(T) ruff-check $(VENV)/bin/ruff check .
lint-format:
	$(T) ruff-format $(VENV)/bin/ruff format --check .
lint-mypy:
	$(T) mypy $(VENV)/bin/mypy
lint-cfn:
	$(T) cfn-lint $(VENV)/bin/cfn-lint --append-rules tools/lint/rules -- template.yaml
lint-asl:
	$(T) asl-check $(PY) tools/lint/asl_check.py template.yaml
lint-sam:
	$(T) sam-validate $(SAM) validate --lint --region $(REGION) --template template.yaml
# Security posture of template.yaml: fails on any failed check (a check that does not apply is
# skipped in place, in the resource's Metadata, with the reason).
lint-checkov:
	$(T) checkov $(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation --file template.yaml
checkov: checkov-venv
	@$(MAKE) lint-checkov

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# sam's cache keys a layer on its ContentUri folder only, and the SluiceLayer's sources live in
# src/ and contracts/: never build with --cached (samconfig.toml keeps it off).
build: venv sam-venv
	$(T) sam-build $(SAM) build --parallel --template template.yaml --parameter-overrides Architecture=$(ARCH)
	$(T) size-check $(PY) tools/layer_size.py --budget-mib $(SIZE_BUDGET_MIB)
	@$(MAKE) $(RUNTIME_STAMP)

# boto3/botocore as the Lambda runtime ships them, beside the build output: the built-artifact
# tests and the local cloud's build mode put it on the path instead of the project's boto3.
RUNTIME_STAMP := .aws-sam/runtime/.installed
$(RUNTIME_STAMP): requirements/lambda-runtime.txt
	rm -rf .aws-sam/runtime
	$(T) lambda-runtime $(PY) $(PIP) --no-deps --target .aws-sam/runtime -r requirements/lambda-runtime.txt
	cp requirements/lambda-runtime.txt $@

# pytest exits 5 when it collected no test: that fails too.
pytest: venv
	@rc=0; $(T) pytest $(PY) -m pytest --durations=15 $(PYTEST_ARGS) || rc=$$?; \
	if [[ $$rc -eq 5 ]]; then echo "pytest ran no test: failing" >&2; fi; exit $$rc

# Lint and build+pytest both run even when the other fails (one CI run reports everything); pytest
# needs the build (tests/artifact imports the functions from it).
test: venv sam-venv
	@$(MAKE) -k lint build-and-pytest

.PHONY: build-and-pytest
build-and-pytest: build
	@$(MAKE) pytest

# On demand, never in CI: sluice's engine against pandas, DuckDB and polars (benchmarks/README.md).
SIZE ?= 100mb
CPUS ?= both
.PHONY: bench
bench: venv
	$(PY) -c 'import polars' 2>/dev/null || $(PY) $(PIP) polars
	$(PY) benchmarks/run.py --size $(SIZE) --cpus $(CPUS)

# ---------------------------------------------------------------- locks
# requirements/dev.lock      pyproject.toml [dev]     -> .venv
# requirements/sam.txt       requirements/sam.in       -> .sam-venv
# requirements/checkov.txt   requirements/checkov.in   -> .checkov-venv
# layers/*/requirements.txt  layers/*/requirements.in  (constrained by dev.lock: the layers ship
#                            the versions the tests ran with; the runtime's boto3 is left out)
# requirements/lambda-runtime.txt                      -> .aws-sam/runtime (tests/artifact)
lock: venv
	[[ -x $(VENV)/bin/uv ]] || $(PY) $(PIP) uv==$(UV_VERSION)
	$(UV_COMPILE) pyproject.toml --extra dev -o requirements/dev.lock
	$(UV_COMPILE) requirements/sam.in -o requirements/sam.txt
	$(UV_COMPILE) requirements/checkov.in -o requirements/checkov.txt
	$(UV_COMPILE) requirements/lambda-runtime.in -o requirements/lambda-runtime.txt
	$(UV_COMPILE) layers/data/requirements.in -c requirements/dev.lock -o layers/data/requirements.txt
	$(UV_COMPILE) layers/sluice/requirements.in -c requirements/dev.lock \
	  $(foreach p,boto3 botocore s3transfer urllib3 python-dateutil six,--no-emit-package $(p)) \
	  -o layers/sluice/requirements.txt

lock-upgrade: UV_FLAGS = --upgrade
lock-upgrade: lock

clean:
	rm -rf .aws-sam .mypy_cache .ruff_cache .pytest_cache
