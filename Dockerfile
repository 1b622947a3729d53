# kubohb images, one Dockerfile with two targets:
#   controller  the sweep controller and `kubohb` CLI; no torch (~450 MB of packages, a third of
#               it bytecode, kept: the root file system is read-only at run time)
#   trainer     the trainer, with torch + CUDA from PyPI's wheels (the nvidia-* packages carry the
#               CUDA libraries, so no CUDA base image is needed; the node only needs the driver)
# Build: `make images`, or `docker build --target controller -t kubohb-controller .`
#
# The base is pinned by tag. Pin it by digest for production builds, e.g.
#   --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>
# (no registry is reachable where this file was written, so no digest could be resolved here).
# `make image-check` builds with a Debian bookworm rootfs from debootstrap tagged as this name.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

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
# sources never reach the final images; only /opt/kubohb is copied over.
FROM base AS venv
RUN python3 -m venv /opt/kubohb
WORKDIR /src

# Dependencies first (the lock files change rarely), then the project: editing code does not
# invalidate the multi-gigabyte torch layer.
FROM venv AS build-controller
COPY helm/image/requirements-controller.txt /src/requirements.txt
RUN pip install --no-deps -r /src/requirements.txt
COPY pyproject.toml README.md /src/
COPY controller /src/controller
COPY trainer /src/trainer
RUN pip install --no-deps --no-build-isolation /src

FROM venv AS build-trainer
COPY helm/image/requirements-trainer.txt /src/requirements.txt
RUN pip install --no-deps -r /src/requirements.txt
COPY pyproject.toml README.md /src/
COPY controller /src/controller
COPY trainer /src/trainer
RUN pip install --no-deps --no-build-isolation /src

FROM base AS controller
COPY --from=build-controller /opt/kubohb /opt/kubohb
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["kubohb"]
CMD ["--help"]

FROM base AS trainer
COPY --from=build-trainer /opt/kubohb /opt/kubohb
USER 10001:10001
WORKDIR /tmp
# The backend passes the trial by the KUBOHB_TRIAL env var, never through a shell string.
ENTRYPOINT ["python", "-m", "trainer"]
