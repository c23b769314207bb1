"""A real Ray cluster on this machine for tests and benchmarks: a head node and worker nodes
as separate processes on 127.0.0.1 (``ray start --head``, ``ray start --address``), each in
a process group of its own with a temp folder of its own, on free ports.

Stopping never uses ``ray stop`` (it would stop every Ray on the machine, other users'
included): each node's processes (the ``ray start --block`` process and everything it
started: GCS, raylet, workers) are found by parent id and ended by their ids.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# A node joins within this long on an idle 2-core machine in ~15 s; a loaded one is slower.
START_TIMEOUT_S = 180.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Linux /proc)."""
    kids = _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return b") Z " not in f.read()
    except OSError:
        return False


def _kill(pids: list[int], sig=signal.SIGKILL, groups: list[int] = ()) -> None:
    """Send ``sig`` to each of ``pids`` and to each process group in ``groups`` (groups that
    this module created with start_new_session, so only processes it started)."""
    for g in groups:
        try:
            os.killpg(g, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for p in pids:
        try:
            os.kill(p, sig)
        except (ProcessLookupError, PermissionError):
            pass


class LocalCluster:
    """``with LocalCluster(workers=1, cpus=1) as c: ... c.address ...``: a head node and
    ``workers`` worker nodes, ``cpus`` logical CPUs each. ``kill_worker(k)`` ends worker
    node k abruptly (a machine lost); ``stop()`` ends everything (also on errors)."""

    def __init__(self, *, workers: int = 1, cpus: float = 1, head_cpus: float | None = None,
                 object_store_mb: int = 150, env: dict | None = None):
        self.n_workers = workers
        self.cpus = cpus
        self.head_cpus = cpus if head_cpus is None else head_cpus
        self.object_store = object_store_mb * 2 ** 20
        self.temp = tempfile.mkdtemp(prefix="qa-ray-", dir="/tmp")  # short: socket paths
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.head: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self._trees: dict[int, set[int]] = {}
        root = str(Path(__file__).resolve().parents[2])
        path = os.environ.get("PYTHONPATH", "")
        self.env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0",
                        PYTHONPATH=root + (os.pathsep + path if path else ""), **(env or {}))
        self.env.pop("RAY_ADDRESS", None)

    # ------------------------------------------------------------------------ start
    def _ray(self) -> str:
        exe = Path(sys.executable).with_name("ray")
        return str(exe) if exe.exists() else "ray"

    def _node(self, head: bool, cpus: float, name: str) -> subprocess.Popen:
        args = [self._ray(), "start", "--block", "--disable-usage-stats",
                "--node-ip-address", "127.0.0.1", "--num-cpus", str(int(cpus)),
                "--object-store-memory", str(self.object_store),
                "--node-manager-port", str(_free_port()),
                "--object-manager-port", str(_free_port()),
                "--metrics-export-port", str(_free_port()),
                "--dashboard-agent-listen-port", str(_free_port()),
                "--dashboard-agent-grpc-port", str(_free_port()),
                "--runtime-env-agent-port", str(_free_port())]
        if head:
            args += ["--head", "--port", str(self.port), "--temp-dir", self.temp,
                     "--include-dashboard", "false"]
        else:
            args += ["--address", self.address]
        log = open(os.path.join(self.temp, f"{name}.log"), "wb")
        p = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self._trees[p.pid] = {p.pid}
        return p

    def start(self) -> "LocalCluster":
        try:
            self.head = self._node(True, self.head_cpus, "head")
            self._wait_port()
            self.workers = [self._node(False, self.cpus, f"worker{k}")
                            for k in range(self.n_workers)]
            self.wait_nodes(1 + self.n_workers)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_port(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.head.poll() is not None:
                raise RuntimeError(f"ray head exited: {self.log('head')[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"ray head did not start in {START_TIMEOUT_S:.0f} s")

    def wait_nodes(self, n: int, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until ``n`` nodes are alive (asked through a short-lived ``ray`` driver in a
        subprocess, so this process does not become a driver)."""
        code = ("import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
                "print(sum(1 for x in ray.nodes() if x['Alive']))")
        deadline = time.monotonic() + timeout
        while True:
            self._track()
            out = subprocess.run([sys.executable, "-c", code, self.address], env=self.env,
                                 capture_output=True, text=True, timeout=timeout)
            try:
                if int(out.stdout.strip().splitlines()[-1]) >= n:
                    return
            except (ValueError, IndexError):
                pass
            for p in [self.head, *self.workers]:
                if p is not None and p.poll() is not None:
                    raise RuntimeError(f"a ray node exited ({' '.join(p.args[2:4])}): "
                                       f"{self.log('head')[-1500:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{n} ray nodes did not come up in {timeout:.0f} s")
            time.sleep(0.5)

    def log(self, name: str) -> str:
        try:
            return Path(self.temp, f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""

    # ------------------------------------------------------------------------ stop
    def _track(self) -> None:
        """Remember every process each node started (a killed parent's children are
        re-parented, so they are collected while the parent lives)."""
        for root in list(self._trees):
            self._trees[root].update(process_tree(root))

    def kill_worker(self, k: int = 0) -> None:
        """End worker node ``k`` at once (SIGKILL to all its processes): a lost machine."""
        p = self.workers[k]
        self._track()
        _kill(sorted(self._trees[p.pid]), groups=[p.pid])
        p.wait(30)

    def stop(self) -> None:
        """End every process of every node (SIGTERM, then SIGKILL), remove the temp folder."""
        self._track()
        procs = [p for p in [*self.workers, self.head] if p is not None]
        pids = sorted(set().union(*self._trees.values())) if self._trees else []
        groups = [p.pid for p in procs]
        _kill(pids, signal.SIGTERM, groups)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.2)
        _kill([p for p in pids if _alive(p)], signal.SIGKILL, groups)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.temp, ignore_errors=True)
        time.sleep(0.5)  # a process that was ending may still have written a log folder
        shutil.rmtree(self.temp, ignore_errors=True)

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
