# syntax=docker/dockerfile:1
# One image, two entry points: `python -m hooks` (the Metacontroller hooks) and
# `python -m sidecar` (the Vault sidecar). The chart runs both containers from it.
#
#   docker build -t mirrors:0.1.0 .
#
# Dependencies come from requirements.lock (runtime) and requirements-build.lock (the
# build backend), both pinned with hashes by `make lock`. tests/chart/test_image.py runs
# the same pip commands in a fresh venv and lints this file with hadolint.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: resolve nothing, install exactly the lock, build our own wheel -------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src

# Runtime dependencies: wheels only (no compiler in any stage), every file hash-checked.
COPY requirements.lock requirements-build.lock ./
RUN python -m venv /opt/mirrors \
 && /opt/mirrors/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: -r requirements.lock \
 && python -m venv /opt/build \
 && /opt/build/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: -r requirements-build.lock

# Our code as a wheel built by the pinned backend, installed without touching the deps.
COPY pyproject.toml README.md ./
COPY mirrors ./mirrors
COPY hooks ./hooks
COPY sidecar ./sidecar
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels . \
 && /opt/mirrors/bin/pip install --no-cache-dir --no-deps /wheels/*.whl \
 && /opt/mirrors/bin/python -m pip uninstall --yes pip \
 && /opt/mirrors/bin/python -m compileall -q /opt/mirrors \
 && /opt/mirrors/bin/python -c "import hooks.app, sidecar.runtime"

# ---- runtime: the base image plus one venv, as a numeric non-root user -----------------------
FROM ${PYTHON_IMAGE}
# No user database entry is needed for a numeric UID; HOME points at the writable /tmp the
# chart mounts (the root filesystem is read-only in the Pod). PYTHONSAFEPATH keeps the working
# directory off sys.path: only the installed packages are importable.
ENV PATH=/opt/mirrors/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONSAFEPATH=1 \
    HOME=/tmp
COPY --from=build /opt/mirrors /opt/mirrors
# The base image's own pip/setuptools are not needed at run time.
RUN python -m pip uninstall --yes pip setuptools wheel
USER 65532:65532
WORKDIR /
EXPOSE 8080 8081
ENTRYPOINT ["python", "-m"]
CMD ["hooks"]
