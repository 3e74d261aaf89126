"""A real single-node SLURM for the tests: Debian's slurm-wlm and munge on 127.0.0.1.

``LocalSlurm`` writes a private configuration in a temporary directory (its own munge key
and socket, state and spool directories, free ports), starts ``munged``, ``slurmctld`` and
``slurmd`` directly (no systemd), and stops them again. Nothing outside the directory is
changed, so it can run beside a site's SLURM. The node's CPU count is raised above the
machine's (``SlurmdParameters=config_overrides``) so that many one-core worker jobs fit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["slurm-wlm", "munge"]
DAEMONS = ["munged", "slurmctld", "slurmd"]
PARTITION = "debug"


def _missing() -> list[str]:
    need = ["sbatch", "squeue", "scancel", "/usr/sbin/slurmctld", "/usr/sbin/slurmd"]
    need.append("/usr/sbin/munged")
    return [c for c in need if shutil.which(c) is None]


def ensure_installed() -> str | None:
    """Install Debian's slurm-wlm and munge when missing (root + apt-get only).

    Returns:
        None when SLURM is available, else why it is not (the reason to skip).
    """
    if not _missing():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"SLURM not installed ({', '.join(_missing())}) and no root apt-get to install it"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    steps = [
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ]
    for cmd in steps:
        try:
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            return f"'{' '.join(cmd)}' took over 10 minutes"
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
            return f"'{' '.join(cmd)}' failed: {' / '.join(tail)}"
    return None if not _missing() else f"still missing after apt-get: {_missing()}"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalSlurm:
    """A private single-node SLURM (controller and node on 127.0.0.1) under ``root``.

    Args:
        root: An empty directory for the configuration, state, logs and munge socket.
        cpus: CPUs the node advertises (may exceed the machine's).
        memory_mb: Memory the node advertises, in MiB.
    """

    def __init__(self, root: Path, *, cpus: int = 16, memory_mb: int = 64_000):
        self.root = Path(root)
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.conf = self.root / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}
        self.ctld_port = free_port()
        self.node_port = free_port()

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point SLURM's commands at this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def write_config(self) -> None:
        """Write the munge key and ``slurm.conf``."""
        r = self.root
        for d in ("munge", "state", "spool", "log"):
            (r / d).mkdir(parents=True, exist_ok=True)
            os.chmod(r / d, 0o700)
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        lines = [
            "ClusterName=ndsimtest",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={self.ctld_port}",
            f"SlurmdPort={self.node_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={r / 'munge' / 'munge.sock'}",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}",
            f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "SchedulerType=sched/builtin",
            "MpiDefault=none",
            "ReturnToService=2",
            "SlurmdParameters=config_overrides",
            "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            "MessageTimeout=5",
            "KillWait=2",
            "MinJobAge=600",
            "InactiveLimit=0",
            "SchedulerParameters=sched_interval=1",
            f"NodeName=ndsim-node NodeHostname=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} "
            f"RealMemory={self.memory_mb} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes=ndsim-node Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.stdout", "ab")  # noqa: SIM115 - kept by Popen
        self.procs[name] = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **self.env},
        )
        log.close()

    def start(self, timeout: float = 60) -> None:
        """Write the configuration, start the three daemons and wait for the node to be idle."""
        self.write_config()
        m = self.root / "munge"
        self._spawn(
            "munged",
            [
                "/usr/sbin/munged",
                "--foreground",
                "--force",
                f"--socket={m / 'munge.sock'}",
                f"--key-file={m / 'munge.key'}",
                f"--pid-file={m / 'munged.pid'}",
                f"--seed-file={m / 'munged.seed'}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
                "--num-threads=1",
            ],
        )
        self._wait(lambda: (m / "munge.sock").exists(), 15, "munged socket")
        self._spawn("slurmctld", ["/usr/sbin/slurmctld", "-D", "-c", "-i", "-f", str(self.conf)])
        self._wait(lambda: self.run(["scontrol", "ping"]).returncode == 0, timeout, "slurmctld")
        self._spawn("slurmd", ["/usr/sbin/slurmd", "-D", "-N", "ndsim-node", "-f", str(self.conf)])
        self._wait(self._node_idle, timeout, "slurmd (node idle)")

    def _node_idle(self) -> bool:
        r = self.run(["sinfo", "-h", "-N", "-o", "%T"])
        return r.returncode == 0 and r.stdout.strip().rstrip("*") == "idle"

    def _wait(self, ok, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead[0]} exited while waiting for {what}:\n{self.logs()}")
            if ok():
                return
            time.sleep(0.2)
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}:\n{self.logs()}")

    def run(self, cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a SLURM command against this cluster."""
        return subprocess.run(
            cmd, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=timeout
        )

    def jobs(self) -> dict[str, str]:
        """Job id -> state of the jobs the controller still lists."""
        r = self.run(["squeue", "-h", "-t", "all", "-o", "%i %T"])
        return dict(line.split() for line in r.stdout.splitlines() if line.strip())

    def logs(self, lines: int = 15) -> str:
        """The tails of the daemons' log files."""
        out = []
        for p in sorted((self.root / "log").glob("*")):
            tail = p.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {p.name}\n" + "\n".join(tail))
        return "\n".join(out)

    def stop_controller(self) -> None:
        """Stop slurmctld only (the 'controller unreachable' case)."""
        self._stop("slurmctld")

    def _stop(self, name: str) -> None:
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)

    def stop(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged (in that order)."""
        if "slurmctld" in self.procs:
            self.run(["scancel", "--full", "--user", str(os.geteuid())], timeout=15)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if not any(s in ("RUNNING", "COMPLETING", "PENDING") for s in self.jobs().values()):
                    break
                time.sleep(0.3)
        for name in reversed(DAEMONS):
            self._stop(name)
        self._kill_leftovers()

    def _kill_leftovers(self) -> None:
        """SIGKILL any process still started for this cluster (job steps, workers)."""
        mark = f"SLURM_CONF={self.conf}".encode()
        spare = {os.getpid(), os.getppid()}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit() or int(d.name) in spare:
                continue
            try:
                env = (d / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if mark in env:
                with contextlib.suppress(OSError):
                    os.kill(int(d.name), signal.SIGKILL)


def slow_python(tmp: Path, *, barrier: int, sleep_s: float) -> Path:
    """A worker python whose runs first wait for ``barrier`` workers, then sleep.

    Runs then occupy their worker long enough to count how many run at once, with no CPU.
    """
    site = tmp / "slowsite"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(
        "import time\n"
        "import sim.experiments.daskrun as d\n"
        "_real = d.execute\n"
        "def execute(*a, **k):\n"
        "    from distributed import get_client\n"
        "    c, end = get_client(), time.time() + 120\n"
        f"    while len(c.scheduler_info(n_workers=-1)['workers']) < {barrier}:\n"
        "        if time.time() > end:\n"
        "            break\n"
        "        time.sleep(0.25)\n"
        f"    time.sleep({sleep_s})\n"
        "    return _real(*a, **k)\n"
        "d.execute = execute\n"
    )
    py = tmp / "slowpython"
    py.write_text(f'#!/bin/sh\nPYTHONPATH={site}:{ROOT} exec {sys.executable} "$@"\n')
    py.chmod(0o755)
    return py


CLUSTER = """
[cluster]
jobs = {jobs}
cores = {cores}
memory = "{memory}"
walltime = "00:15:00"
check_seconds = 2
scheduler_options = {{dashboard_address = ":0"}}
{extra}
"""
"""The ``[cluster]`` table of the SLURM tests' and benchmark's specs (format with jobs, cores,
memory and extra lines)."""
