# ruff: noqa: T201, S603, PLC0415  (a command-line script: prints, runs our own tools, imports late)
"""`make demo` / `make demo-down`: scenario 1 on a local control plane, left running.

  python hack/demo.py up     build what is missing, start everything in the background, run
                             scenario 1, print what it did and how to reach and stop it
  python hack/demo.py down   stop everything by PID and remove the temporary directories

`up` starts a detached `python hack/demo.py serve`, which owns etcd + kube-apiserver +
kube-controller-manager (tests/support/controlplane.py), the hooks (`python -m hooks`) and the
test driver standing in for Metacontroller (tests/e2e/driver). PIDs, logs and the kubeconfig
are under .demo/. OpenBao (dev mode) and the Vault sidecar run beside them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.openbao import OpenBao

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEMO = ROOT / ".demo"
STATE = DEMO / "state.json"
KUBECONFIG = DEMO / "kubeconfig"
SERVE_LOG = DEMO / "serve.log"


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state() -> dict[str, object]:
    try:
        state: dict[str, object] = json.loads(STATE.read_text())
    except (OSError, ValueError):
        return {}
    return state


def kubectl(bin_dir: Path, *args: str, check: bool = True) -> str:
    argv = [str(bin_dir / "kubectl"), "--kubeconfig", str(KUBECONFIG), *args]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if check and res.returncode != 0:
        raise SystemExit(f"demo: kubectl {' '.join(args)} failed:\n{res.stderr}{res.stdout}")
    return res.stdout


def build() -> Path:
    from tests.support.controlplane import find_binaries

    say("building the control-plane tools if missing (hack/build-tools.sh; first time: ~20 min)")
    return find_binaries()  # streams the build's progress to stderr


# -- serve: the long-running background process ---------------------------------------------


def serve() -> None:
    import yaml

    from mirrors import logs
    from tests.e2e.driver import CompositeDriver, Kube, with_hooks_url
    from tests.support.controlplane import ControlPlane, find_binaries, free_port
    from tests.support.openbao import OpenBao
    from tests.support.process import Service

    logs.setup("info")
    bin_dir = find_binaries()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with ControlPlane(bin_dir, controller_manager=True) as cp:
        shutil.copy(cp.kubeconfig, KUBECONFIG)
        KUBECONFIG.chmod(0o600)
        kubectl(
            bin_dir, "apply", "-f", str(ROOT / "crds" / "secretmirrors.mirrors.kts.studio.yaml")
        )
        kubectl(bin_dir, "wait", "--for=condition=Established", "--timeout=60s",
                "crd/secretmirrors.mirrors.kts.studio")  # fmt: skip
        port, sidecar_port = free_port(), free_port()
        hooks = Service("hooks", DEMO / "hooks.log")
        sidecar = Service("sidecar", DEMO / "sidecar.log", stop_timeout=20)
        bao = OpenBao()
        try:
            hooks.spawn(
                ["-m", "hooks", "--host", "127.0.0.1", "--port", str(port)],
                ready_url=f"http://127.0.0.1:{port}/healthz", timeout=30,
            )  # fmt: skip
            bao.start()
            kubectl(bin_dir, "create", "namespace", "mirrors")
            approle = seed_vault(bao)
            ids = (f"--from-literal={k}={v}" for k, v in zip(KEYS, approle, strict=True))
            kubectl(bin_dir, "create", "secret", "generic", "vault-approle", *ids)
            sidecar.spawn(
                ["-m", "sidecar", "--kubeconfig", str(cp.kubeconfig),
                 "--controller-namespace", "mirrors", "--host", "127.0.0.1",
                 "--port", str(sidecar_port), "--log-level", "info"],
                ready_url=f"http://127.0.0.1:{sidecar_port}/readyz", timeout=60,
            )  # fmt: skip
            # The sidecar turns status transitions into Events once it leads; scenario 1's
            # NoSecret comes in the first second.
            leases = ("get", "lease", "-n", "mirrors", "-o", "name")
            wait_until(lambda: bool(kubectl(bin_dir, *leases, check=False).strip()), 60, "a leader")
            controller = yaml.safe_load(
                (ROOT / "metacontroller" / "compositecontroller.yaml").read_text()
            )
            url = f"http://127.0.0.1:{port}"
            with CompositeDriver(Kube(cp.kubeconfig), with_hooks_url(controller, url)):
                STATE.write_text(json.dumps({
                    "serve": os.getpid(), "hooks": hooks.pid, "sidecar": sidecar.pid,
                    "openbao": bao.proc.pid if bao.proc else None, "vault_addr": bao.addr,
                    "control_plane": cp.pids, "workdir": str(cp.workdir),
                    "bin_dir": str(bin_dir), "hooks_url": url, "ready": True,
                }))  # fmt: skip
                stop.wait()
        finally:
            for child in (hooks, sidecar):
                child.stop()
            bao.close()


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: timed out waiting for {what}; logs in {DEMO}")
        time.sleep(0.2)


def seed_vault(bao: OpenBao) -> tuple[str, str]:
    """Scenario 2's secret and an AppRole that may read it: what a Vault admin would set up."""
    bao.api(
        "POST", "secret/data/myvaultsecret", {"data": {"tls.crt": DEMO_CERT, "tls.key": "demo"}}
    )
    bao.put_policy(
        "mirrors-demo",
        'path "secret/data/myvaultsecret" { capabilities = ["read", "create", "update"] }\n'
        'path "sys/internal/ui/mounts/*" { capabilities = ["read"] }',
    )
    return bao.approle("mirrors-demo", ["mirrors-demo"])


KEYS = ("role-id", "secret-id")
DEMO_CERT = "-----BEGIN CERTIFICATE-----\nMIIDemo...\n-----END CERTIFICATE-----\n"


# -- up / down ------------------------------------------------------------------------------


def up() -> None:
    state = read_state()
    if isinstance(state.get("serve"), int) and alive(state["serve"]):  # type: ignore[arg-type]
        say(f"already running (pid {state['serve']}); `make demo-down` first to start afresh")
        print(f"export KUBECONFIG={KUBECONFIG}")
        return
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    bin_dir = build()
    say("starting etcd, kube-apiserver, kube-controller-manager, the hooks and the driver")
    with SERVE_LOG.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve"],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    STATE.write_text(json.dumps({"serve": proc.pid}))
    deadline = time.monotonic() + 180
    while not read_state().get("ready"):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = "\n".join(SERVE_LOG.read_text(errors="replace").splitlines()[-30:])
            down(quiet=True)
            raise SystemExit(f"demo: the stack did not come up; last lines of {SERVE_LOG}:\n{tail}")
        time.sleep(0.3)
    scenario1(bin_dir)


def scenario1(bin_dir: Path) -> None:
    def show(*args: str) -> str:
        print(f"$ kubectl {' '.join(args)}", flush=True)
        out = kubectl(bin_dir, *args)
        print(out, end="", flush=True)
        return out

    def wait_for(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
        wait_until(check, timeout, what)

    def mirror_status() -> str:
        return kubectl(bin_dir, "get", "secretmirror", "mysecret-mirror",
                       "-o", "jsonpath={.status.mirrorStatus}", check=False)  # fmt: skip

    def describe() -> str:
        return kubectl(bin_dir, "describe", "secretmirror", "mysecret-mirror", check=False)

    say("scenario 1 (SCENARIOS.md): the original's manifests, unchanged")
    show("apply", "-f", "examples/mysecret-mirror.yaml")
    wait_for("Pending", lambda: mirror_status() == "Pending")
    show("get", "secretmirrors")
    show("apply", "-f", "examples/mysecret.yaml")
    wait_for("Active", lambda: mirror_status() == "Active")
    for ns in ("project-a-main", "project-b-main"):
        show("create", "ns", ns)

    def copies() -> bool:
        out = kubectl(bin_dir, "get", "secret", "-A", check=False)
        return sum("mysecret" in line for line in out.splitlines()) == 3

    wait_for("the copies", copies, 10)
    show("get", "secretmirrors")
    print("$ kubectl get secret -A | grep mysecret", flush=True)
    lines = kubectl(bin_dir, "get", "secret", "-A").splitlines()
    print("\n".join([lines[0], *(line for line in lines if "mysecret" in line)]), flush=True)
    print("$ kubectl describe secretmirror mysecret-mirror | sed -n '/^Events:/,$p'", flush=True)
    wait_for("the Active event", lambda: "SecretMirror is synced" in describe(), 10)
    print(describe().split("Events:", 1)[-1].join(["Events:", ""]), flush=True)
    print()
    say("running in the background (logs and PIDs in .demo/). Reach the cluster with:")
    print(f"  export KUBECONFIG={KUBECONFIG}")
    print(f"  export PATH={bin_dir}:$PATH")
    vault = read_state().get("vault_addr")
    say("OpenBao runs too, with secret/myvaultsecret and the AppRole Secret default/vault-approle;")
    say("try scenario 2 (Vault -> namespaces) with only the address changed:")
    print(
        f"  sed 's#https://vault.example.com#{vault}#' examples/myvaultsecret-mirror.yaml"
        " | kubectl apply -f -"
    )
    print("  kubectl create ns project-c-main && kubectl get secret -n project-c-main")
    say("stop everything with:  make demo-down")


def down(quiet: bool = False) -> None:
    state = read_state()
    serve_pid = state.get("serve")
    if isinstance(serve_pid, int) and alive(serve_pid):
        if not quiet:
            say(f"stopping the demo (pid {serve_pid})")
        os.kill(serve_pid, signal.SIGTERM)
        deadline = time.monotonic() + 40
        while alive(serve_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    # Anything the serve process could not stop: by recorded PID only.
    pids = [state.get(k) for k in ("hooks", "sidecar", "openbao")]
    pids += list(state.get("control_plane") or [])  # type: ignore[call-overload]
    for pid in [serve_pid, *pids]:
        if isinstance(pid, int) and alive(pid):
            os.kill(pid, signal.SIGKILL)
    workdir = state.get("workdir")
    if isinstance(workdir, str) and Path(workdir).name.startswith("mirrors-cp-"):
        shutil.rmtree(workdir, ignore_errors=True)
    shutil.rmtree(DEMO, ignore_errors=True)
    if not quiet:
        say("stopped; .demo/ removed")


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    if command == "serve":
        serve()
    elif command == "up":
        up()
    elif command == "down":
        down()
    else:
        raise SystemExit(f"usage: {sys.argv[0]} up|down")


if __name__ == "__main__":
    main()
