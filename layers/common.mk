# Shared by layers/*/Makefile. `sam build` (BuildMethod: makefile) copies the layer's ContentUri
# folder to a scratch directory and runs `make --makefile <original path>/Makefile build-<LogicalId>`
# there with ARTIFACTS_DIR set, and nothing else: BuildArchitecture is not exported. sam does write
# its build graph (with each layer's resolved architecture) to <build dir>/../build.toml before it
# builds, so the architecture is read from there; SLUICE_ARCH (the top-level Makefile exports it
# from ARCH) must agree with it, and is the only source when make runs by hand:
#   make -f layers/data/Makefile build-DataLayer ARTIFACTS_DIR=/tmp/data SLUICE_ARCH=arm64

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
PYTHON ?= python3.13

ifndef ARTIFACTS_DIR
  $(error ARTIFACTS_DIR is not set: sam build sets it; by hand pass ARTIFACTS_DIR=<dir>)
endif

LAYER_ID := $(notdir $(abspath $(ARTIFACTS_DIR)))
SAM_BUILD_GRAPH := $(wildcard $(abspath $(ARTIFACTS_DIR)/../..)/build.toml)
GRAPH_ARCH = import sys, tomllib; defs = tomllib.load(open(sys.argv[1], "rb")).get("layer_build_definitions", {}); \
  print(next((d["architecture"] for d in defs.values() if d.get("layer_name") == sys.argv[2]), ""))
ifneq ($(SAM_BUILD_GRAPH),)
  SAM_ARCH := $(shell $(PYTHON) -c '$(GRAPH_ARCH)' "$(SAM_BUILD_GRAPH)" "$(LAYER_ID)")
endif
SLUICE_ARCH ?= $(or $(SAM_ARCH),x86_64)
ifneq ($(SAM_ARCH),)
  ifneq ($(SAM_ARCH),$(SLUICE_ARCH))
    $(error sam builds $(LAYER_ID) for $(SAM_ARCH) but SLUICE_ARCH is $(SLUICE_ARCH): run `make build ARCH=$(SAM_ARCH)`)
  endif
endif

ifeq ($(SLUICE_ARCH),x86_64)
  WHEEL_MACHINE := x86_64
else ifeq ($(SLUICE_ARCH),arm64)
  WHEEL_MACHINE := aarch64
else
  $(error SLUICE_ARCH must be x86_64 or arm64, not '$(SLUICE_ARCH)')
endif

# Linux wheels for the Lambda target (Amazon Linux 2023: glibc 2.34, CPython 3.13) whatever the build
# host is. pip does not widen an explicit --platform to older manylinux tags, so every glibc level the
# runtime accepts is listed (pydantic-core, for one, only ships manylinux_2_17 wheels).
# Requirements files are complete hashed locks (make lock), hence --no-deps.
WHEEL_PLATFORMS := $(foreach v,34 33 32 31 30 29 28 27 26 25 24 23 22 21 20 19 18 17,manylinux_2_$(v)_$(WHEEL_MACHINE)) \
  manylinux2014_$(WHEEL_MACHINE)
PIP_TARGET = $(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  --no-deps --no-compile --only-binary=:all: --implementation cp --python-version 3.13 \
  $(addprefix --platform ,$(WHEEL_PLATFORMS)) --target

# GNU strip only knows the host's ELF; llvm-strip knows every target.
HOST_MACHINE := $(shell uname -m)
ifeq ($(HOST_MACHINE),$(if $(filter arm64,$(SLUICE_ARCH)),aarch64,x86_64))
  STRIP_TOOL ?= $(shell command -v strip || command -v llvm-strip)
else
  STRIP_TOOL ?= $(shell command -v llvm-strip || command -v $(if $(filter arm64,$(SLUICE_ARCH)),aarch64,x86_64)-linux-gnu-strip)
endif

# Bytecode compiled once at build time: /opt is read-only on Lambda, so without it every cold
# start recompiles. unchecked-hash .pyc files stay valid whatever the zip does to mtimes;
# tracebacks show the path the layer has on Lambda.
define compile_bytecode
	$(PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash -s "$(1)" -p /opt/python "$(1)" >/dev/null
endef
