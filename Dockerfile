# kubohb images, one Dockerfile with two targets:
#   controller  the sweep controller and `kubohb` CLI; no torch (~450 MB of packages, a third of
#               it bytecode, kept: the root file system is read-only at run time)
#   trainer     the trainer, with torch + CUDA from PyPI's wheels (the nvidia-* packages carry the
#               CUDA libraries, so no CUDA base image is needed; the node only needs the driver)
# Build: `make images` (both, tagged with pyproject.toml's version), or
#   docker build --target controller -t kubohb-controller:<version> .
#
# The base: python:3.11.14-slim-bookworm, pinned by the digest of its multi-platform index (the
# tag in the reference is for people; a pull fetches by the digest, so a re-pushed tag changes
# nothing here). Bump both: `helm/image/bump-base.sh python:<new tag>` resolves and writes the
# digest (docs/kubernetes.md, "Images"). No registry is needed by `make image-check`: it builds on
# a Debian bookworm rootfs from debootstrap imported as python:3.11.14-slim-bookworm (the digest
# stripped) and passes --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/kubohb \
    PATH=/opt/kubohb/bin:$PATH
# uid/gid 10001: the chart's securityContext (runAsNonRoot, runAsUser 10001) expects this user.
RUN groupadd --system --gid 10001 kubohb \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin kubohb

# One virtual environment per target, built in throw-away stages so that compilers, pip caches and
# sources never reach the final images; only /opt/kubohb and the project's wheel are copied over.
FROM base AS venv
RUN python3 -m venv /opt/kubohb
WORKDIR /src

# The dependencies of each target (the lock files change rarely) ...
FROM venv AS deps-controller
COPY helm/image/requirements-controller.txt /src/requirements.txt
RUN pip install --no-deps -r /src/requirements.txt

FROM venv AS deps-trainer
COPY helm/image/requirements-trainer.txt /src/requirements.txt
RUN pip install --no-deps -r /src/requirements.txt

# ... and the project as one wheel for both (built with the locked setuptools). A final image is
# its dependencies' venv, one layer that only a lock file change rebuilds, plus two small layers
# with the project: editing code neither rebuilds nor re-pushes (nor makes nodes re-pull) the
# multi-gigabyte torch layer. The wheel (~220 KB) stays in /tmp/dist, hidden at run time by the
# pod's /tmp volume: `RUN --mount=type=bind,from=wheel` would avoid that, but buildah 1.28
# (Debian bookworm's) mounts nothing when the wheel stage comes from its layer cache.
FROM deps-controller AS wheel
COPY pyproject.toml README.md /src/
COPY controller /src/controller
COPY trainer /src/trainer
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /dist /src

FROM base AS controller
COPY --from=deps-controller /opt/kubohb /opt/kubohb
COPY --from=wheel /dist/ /tmp/dist/
RUN pip install --no-deps /tmp/dist/kubohb-*.whl
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["kubohb"]
CMD ["--help"]

FROM base AS trainer
COPY --from=deps-trainer /opt/kubohb /opt/kubohb
COPY --from=wheel /dist/ /tmp/dist/
RUN pip install --no-deps /tmp/dist/kubohb-*.whl
USER 10001:10001
WORKDIR /tmp
# The backend passes the trial by the KUBOHB_TRIAL env var, never through a shell string.
ENTRYPOINT ["python", "-m", "trainer"]
