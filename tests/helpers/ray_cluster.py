"""A two-node Ray cluster on this machine: a head and a worker, each started by its own
`ray start` process, as an operator starts them on two machines.

The worker carries a custom resource (``worker_node``) that the head lacks, so a job that asks
for it can run only on the worker: a sweep that finishes under that demand ran there.
Stopping kills exactly this cluster's processes (found by its own temp dir), never with
`ray stop`, which would end every Ray cluster on the machine, another test's included.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from tests.helpers.wait import wait_until

WORKER_RESOURCE = "worker_node"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray() -> str:
    return str(Path(sys.executable).with_name("ray"))


def _env() -> dict:
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}


def alive_nodes(address: str) -> list[dict]:
    """[{resources...}] of the cluster's live nodes, asked from a fresh driver process."""
    code = ("import json, ray; ray.init(address=%r, logging_level='ERROR', log_to_driver=False); "
            "print(json.dumps([n['Resources'] for n in ray.nodes() if n['Alive']]))") % address
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    if out.returncode != 0:
        return []
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cluster_pids(temp_dir: str) -> list[int]:
    """Processes whose command line names the cluster's temp dir (every Ray daemon and worker of
    it does): read from /proc where there is one, else from pgrep."""
    proc = Path("/proc")
    if not proc.is_dir():
        out = subprocess.run(["pgrep", "-f", temp_dir], capture_output=True, text=True)
        return [int(x) for x in out.stdout.split()]
    pids = []
    for d in proc.iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            with contextlib.suppress(OSError):
                if temp_dir.encode() in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
    return pids


def _kill_cluster(temp_dir: str) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _cluster_pids(temp_dir):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not _cluster_pids(temp_dir), timeout=15, what="the Ray cluster's processes to end",
                       poll_s=0.2)
            return


@contextlib.contextmanager
def two_node_cluster() -> Iterator[str]:
    """Yield the head's address once both nodes are alive; stop both after."""
    # a short path: Ray's unix sockets live under it and a socket path is limited to ~107 bytes
    temp_dir = tempfile.mkdtemp(prefix="rbray", dir="/tmp")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus=1", "--disable-usage-stats", f"--temp-dir={temp_dir}"]
    try:
        subprocess.run([_ray(), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                        "--include-dashboard=false", f"--ray-client-server-port={_free_port()}",
                        *common], check=True, capture_output=True, text=True, env=_env(), timeout=180)
        subprocess.run([_ray(), "start", f"--address={address}", "--node-ip-address=127.0.0.1",
                        f"--resources={json.dumps({WORKER_RESOURCE: 2})}", *common],
                       check=True, capture_output=True, text=True, env=_env(), timeout=180)
        wait_until(lambda: len(alive_nodes(address)) == 2, timeout=120, what="both Ray nodes alive", poll_s=1.0)
        yield address
    finally:
        _kill_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
