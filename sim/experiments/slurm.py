"""SLURM worker jobs for a sweep: submitted, watched, kept at the requested count, cancelled.

dask-jobqueue's ``SLURMCluster`` runs the Dask scheduler and writes the job script from the
spec's ``[cluster]`` table over the site's ``jobqueue.slurm`` configuration. The jobs are
submitted, polled and cancelled here, with ``sbatch``, ``squeue`` and ``scancel`` under time
limits, because dask-jobqueue 0.9 waits without limit for those commands, reports a rejected
submission only to a log, and never notices a job that ended: that is how sweeps used to
hang. :class:`SlurmWorkers` keeps ``jobs`` jobs alive (a job that ends is replaced) and stops
the sweep with a :class:`ClusterError` (the ``sbatch`` message or the job log's tail) when
SLURM refuses the jobs or ``max_failed_jobs`` jobs in a row end without finishing a run.

The scheduler and its HTTP server bind to one address: the ``interface``'s, else the one this
machine uses to reach the SLURM controller (loopback when the controller is on this machine,
in which case the workers bind to loopback too).
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.errors import UserError
from sim.experiments.spec import ClusterSpec
from sim.experiments.stopping import BackendError

SBATCH_TIMEOUT_S = 60.0
QUERY_TIMEOUT_S = 30.0
FIRST_CHECK_S = 1.0  # after a submission, checks at 1, 2, 4, ... s up to check_seconds
UNREACHABLE_LIMIT_S = 120.0  # squeue failing this long with no worker connected: stop
LOG_TAIL_LINES = 12
# job states in which the job's workers may still run (others: the job has ended)
ALIVE = {
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "SUSPENDED",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
}
# pending reasons that do not clear by waiting (the request exceeds a limit)
HOPELESS = {
    "BadConstraints",
    "PartitionConfig",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "InvalidAccount",
    "InvalidQOS",
    "QOSMaxWallDurationPerJobLimit",
    "AssocMaxWallDurationPerJobLimit",
    "QOSMaxCpuPerJobLimit",
    "AssocMaxCpuPerJobLimit",
    "QOSMaxMemoryPerJob",
    "QOSMaxNodePerJobLimit",
    "AssocMaxNodesPerJobLimit",
}


class ClusterError(BackendError):
    """The sweep cannot get (or keep) SLURM workers; the message names the cause."""


def _say(msg: str) -> None:
    print(f"slurm: {msg}", file=sys.stderr, flush=True)


def import_jobqueue() -> Any:
    """Import dask_jobqueue, undoing its replacement of the SIGINT handler.

    dask-jobqueue 0.9.0 sets ``SIGINT -> sys.exit()`` on import (dask-jobqueue issue 696),
    which turns Ctrl-C into a silent exit with status 0.
    """
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGINT) if main else None
    try:
        import dask_jobqueue
    except ImportError:
        raise UserError("[cluster] needs dask-jobqueue: pip install 'ndsim[cluster]'") from None
    if main:
        now = signal.getsignal(signal.SIGINT)
        if getattr(now, "__module__", "") == "dask_jobqueue.runner":
            keep = before if getattr(before, "__module__", "") != "dask_jobqueue.runner" else None
            signal.signal(signal.SIGINT, keep or signal.default_int_handler)
    return dask_jobqueue


def _site(key: str) -> Any:
    """The site's dask-jobqueue setting ``jobqueue.slurm.<key>`` (None when unset)."""
    import dask

    return dask.config.get(f"jobqueue.slurm.{key}", None)


@dataclass
class JobPlan:
    """The worker jobs' settings: the spec's keys over the site's configuration."""

    kwargs: dict[str, Any]  # SLURMCluster / SLURMJob keyword arguments
    job_name: str
    log_directory: Path
    processes: int


def plan_jobs(c: ClusterSpec, out: Path) -> JobPlan:
    """Resolve ``[cluster]``: each key not given comes from the site's ``jobqueue.slurm``."""
    import_jobqueue()  # registers dask-jobqueue's defaults under the site's settings
    cores = c.cores or _site("cores")
    memory = c.memory or _site("memory")
    missing = [k for k, v in (("cores", cores), ("memory", memory)) if not v]
    if missing:
        raise UserError(
            "[cluster] needs the cores and memory of a worker job",
            problems=[
                f"cluster.{k}: not given, and the site's dask-jobqueue configuration "
                f"(jobqueue.slurm.{k}) has none"
                for k in missing
            ],
        )
    prologue = c.job_script_prologue
    if prologue is None:
        prologue = _site("job-script-prologue") or []
    python = c.python or _site("python") or ("python3" if prologue else sys.executable)
    job_name = c.job_name or _site("name") or "dask-worker"
    logs = Path(c.log_directory or _site("log-directory") or out / "slurm").expanduser()
    processes = int(c.processes or _site("processes") or cores)
    kw: dict[str, Any] = {
        "cores": int(cores),
        "memory": memory,
        "processes": processes,
        "python": python,
        "job_name": job_name,
        "log_directory": str(logs.resolve()),
        "job_script_prologue": list(prologue),
    }
    given = {
        "walltime": c.walltime,
        "queue": c.partition,
        "account": c.account,
        "job_extra_directives": c.job_extra_directives,
        "local_directory": c.local_directory,
        "interface": c.interface,
    }
    kw.update({k: v for k, v in given.items() if v is not None})  # else: the site's
    return JobPlan(kwargs=kw, job_name=job_name, log_directory=logs, processes=processes)


def job_script(c: ClusterSpec, out: Path, scheduler: str = "tcp://SCHEDULER:8786") -> str:
    """The batch script a worker job would run (for checking a spec; starts nothing)."""
    jq = import_jobqueue()
    plan = plan_jobs(c, out)
    return jq.slurm.SLURMJob(scheduler, name=f"{plan.job_name}-w0", **plan.kwargs).job_script()


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a SLURM command; a timeout comes back as return code 124."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 124, "", f"no answer within {timeout:.0f} s")
    except OSError as exc:
        return subprocess.CompletedProcess(cmd, 127, "", str(exc))


def _message(r: subprocess.CompletedProcess[str]) -> list[str]:
    text = (r.stderr or r.stdout or f"exit status {r.returncode}").strip()
    return [line.strip() for line in text.splitlines() if line.strip()][-4:]


def scheduler_host(interface: str | None) -> tuple[str, bool]:
    """The address the scheduler binds to, and whether SLURM runs on this machine only.

    Raises:
        ClusterError: The SLURM controller does not answer.
    """
    from distributed.utils import get_ip, get_ip_interface

    if interface:
        try:
            return get_ip_interface(interface), False
        except (KeyError, ValueError) as exc:
            raise UserError(f"cluster.interface: {interface!r}: {exc}") from None
    r = _run(["scontrol", "show", "config"], QUERY_TIMEOUT_S)
    m = re.search(r"^SlurmctldHost\[0\]\s*=\s*([^\s(]+)(?:\(([^)]+)\))?", r.stdout, re.M)
    if r.returncode != 0 or m is None:
        raise ClusterError(
            "cannot reach the SLURM controller",
            problems=[*(f"scontrol show config: {line}" for line in _message(r))],
        )
    host = m.group(2) or m.group(1)
    try:
        addr = ipaddress.ip_address(socket.getaddrinfo(host, None)[0][4][0])
    except (OSError, ValueError) as exc:
        raise ClusterError(f"cannot resolve the SLURM controller host {host!r}: {exc}") from None
    if addr.is_loopback:
        return "127.0.0.1", True
    return get_ip(str(addr), 6817), False


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while jobs are being cancelled (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, signal.SIG_IGN)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@dataclass
class Job:
    """One worker job."""

    name: str  # its Dask workers' name (<name>, or <name>-<k> for several per job)
    job_id: str
    script: Path
    state: str = "PENDING"
    reason: str = ""
    runs: int = 0  # runs its workers finished
    connected: bool = False


@dataclass
class JobCounts:
    """Jobs submitted and ended during the sweep."""

    submitted: int = 0
    ended: int = 0
    failed: list[str] = field(default_factory=list)


class SlurmWorkers:
    """A Dask scheduler here and ``jobs`` SLURM worker jobs kept running for it.

    Args:
        spec: The ``[cluster]`` table.
        out: The sweep's output directory (default home of the job logs).
        say: Where progress lines go (stderr by default).
    """

    def __init__(self, spec: ClusterSpec, out: Path, say: Callable[[str], None] = _say):
        self.spec = spec
        self.out = Path(out)
        self.say = say
        self.plan = plan_jobs(spec, self.out)
        self.jobs: dict[str, Job] = {}
        self.counts = JobCounts()
        self.failed_in_row = 0
        self.cluster: Any = None
        self.client: Any = None
        self.address = ""
        self._known: set[str] = set()
        self._next_check = 0.0
        self._wait = FIRST_CHECK_S
        self._unreachable_since: float | None = None

    # ------------------------------------------------------------------------- start
    def start(self) -> Any:
        """Start the scheduler and submit the jobs; returns a connected ``Client``."""
        if shutil.which("sbatch") is None:
            raise ClusterError(
                "[cluster] needs SLURM, but there is no 'sbatch' on the PATH",
                problems=[
                    "run the sweep on a SLURM login node (after e.g. 'module load slurm'), "
                    "or leave out [cluster] and use --workers N or --scheduler ADDRESS"
                ],
            )
        jq = import_jobqueue()
        from distributed import Client

        host, local = scheduler_host(self.spec.interface or _site("interface"))
        sched = dict(_site("scheduler-options") or {})
        sched.update(self.spec.scheduler_options or {})
        if "host" not in sched and "interface" not in sched:
            sched["host"] = host
        port = str(sched.get("dashboard_address") or ":8787").rpartition(":")[2] or "8787"
        dash_host = str(sched.get("dashboard_address") or "").rpartition(":")[0]
        sched["dashboard_address"] = f"{dash_host or host}:{port}"
        kw = dict(self.plan.kwargs)
        if local and not kw.get("interface"):
            kw["worker_extra_args"] = [*(_site("worker-extra-args") or []), "--host", host]
        self.plan.kwargs = kw
        self.plan.log_directory.mkdir(parents=True, exist_ok=True)
        self.cluster = jq.SLURMCluster(scheduler_options=sched, silence_logs="error", **kw)
        self.address = self.cluster.scheduler_address
        self.client = Client(self.cluster)
        for _ in range(self.spec.jobs):
            self._submit(first=True)
        return self.client

    def _submit(self, *, first: bool = False) -> bool:
        jq = import_jobqueue()
        name = f"{self.plan.job_name}-w{self.counts.submitted}"  # the workers' name
        script = self.plan.log_directory / f"{name}.sh"
        text = jq.slurm.SLURMJob(self.address, name=name, **self.plan.kwargs).job_script()
        script.write_text(text)
        r = _run(["sbatch", "--parsable", str(script)], SBATCH_TIMEOUT_S)
        m = re.match(r"\s*(\d+)", r.stdout or "")
        if m is not None:  # next to its logs: <job_name>-<job id>.{sh,out,err}
            script = script.replace(script.with_name(f"{self.plan.job_name}-{m.group(1)}.sh"))
        if r.returncode != 0 or m is None:
            why = [f"sbatch: {line.removeprefix('sbatch: ')}" for line in _message(r)]
            if first or self._fail_one(f"sbatch failed: {'; '.join(why)}"):
                raise ClusterError(
                    "SLURM did not accept the worker job",
                    problems=[*why, f"job script: {script}"],
                )
            return False
        self.counts.submitted += 1
        self.jobs[name] = Job(name=name, job_id=m.group(1), script=script)
        self.say(f"submitted job {m.group(1)} ({name})")
        self._wait = FIRST_CHECK_S
        self._next_check = min(self._next_check, time.monotonic() + FIRST_CHECK_S)
        return True

    # ------------------------------------------------------------------------- watch
    def _job_of(self, worker: str) -> Job | None:
        return self.jobs.get(worker) or self.jobs.get(worker.rpartition("-")[0])

    def ran(self, worker: str) -> None:
        """Count a run finished by ``worker``."""
        job = self._job_of(worker)
        if job is not None:
            job.runs += 1
            self.failed_in_row = 0

    def tick(self, workers: dict[str, int]) -> None:
        """Check the jobs when due (or soon after a worker left); replace ended ones.

        Raises:
            ClusterError: Jobs cannot start, keep failing, or SLURM does not answer.
        """
        names = set(workers)
        for w in names - self._known:
            job = self._job_of(w)
            if job is not None and not job.connected:
                job.connected = True
                self.say(f"job {job.job_id} ({job.name}): workers connected")
        now = time.monotonic()
        if self._known - names:
            self._next_check = min(self._next_check, now + FIRST_CHECK_S)
        self._known = names
        if now < self._next_check:
            return
        self._wait = min(self._wait * 2, self.spec.check_seconds)
        self._next_check = now + self._wait
        states = self._query(now, bool(names))
        if states is None:
            return
        for job in list(self.jobs.values()):
            state, reason = states.get(job.job_id, ("ENDED", "no longer listed by squeue"))
            if state in ALIVE:
                if (state, reason) != (job.state, job.reason):
                    self.say(f"job {job.job_id} ({job.name}): {state.lower()} {reason}".strip())
                job.state, job.reason = state, reason
                if state == "PENDING" and reason in HOPELESS:
                    raise ClusterError(
                        f"SLURM cannot start worker job {job.job_id}: pending ({reason})",
                        problems=[
                            "the job asks for more than the partition, account or QOS "
                            "allows (cores, memory, walltime or nodes)",
                            f"job script: {job.script}",
                        ],
                    )
                continue
            self._ended(job, state, reason)
        for _ in range(self.spec.jobs - len(self.jobs)):
            if not self._submit():
                break

    def _query(self, now: float, have_workers: bool) -> dict[str, tuple[str, str]] | None:
        if not self.jobs:
            return {}
        ids = ",".join(j.job_id for j in self.jobs.values())
        r = _run(["squeue", "-h", "-t", "all", "-j", ids, "-o", "%i|%T|%r"], QUERY_TIMEOUT_S)
        if r.returncode != 0 and "Invalid job id" in (r.stderr or ""):
            return {}  # all purged from the controller's memory: ended
        if r.returncode != 0:
            if self._unreachable_since is None:
                self._unreachable_since = now
                self.say(f"squeue failed ({'; '.join(_message(r))}); will retry")
            if not have_workers and now - self._unreachable_since > UNREACHABLE_LIMIT_S:
                raise ClusterError(
                    "lost contact with the SLURM controller and no worker is connected",
                    problems=[f"squeue: {line}" for line in _message(r)],
                )
            return None
        self._unreachable_since = None
        out: dict[str, tuple[str, str]] = {}
        for line in r.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) == 3:
                reason = parts[2] if parts[2] not in ("None", "(null)") else ""
                out[parts[0]] = (parts[1], reason)
        return out

    def _ended(self, job: Job, state: str, reason: str) -> None:
        del self.jobs[job.name]
        self.counts.ended += 1
        how = f"{state}{f' ({reason})' if reason else ''}"
        if job.runs:
            self.failed_in_row = 0
            self.say(f"job {job.job_id} ({job.name}) ended {how} after {job.runs} runs")
            return
        tail = self.log_tail(job)
        if self._fail_one(f"job {job.job_id} ended {how} without finishing a run"):
            raise ClusterError(
                f"{self.failed_in_row} SLURM worker jobs in a row ended without finishing "
                f"a run; the last, job {job.job_id}, ended {how}",
                problems=[
                    *(tail or [f"no job log found in {self.plan.log_directory}"]),
                    f"job script: {job.script}",
                ],
            )

    def _fail_one(self, what: str) -> bool:
        """Count a failed job; True when the budget is spent."""
        self.failed_in_row += 1
        self.counts.failed.append(what)
        n, limit = self.failed_in_row, self.spec.max_failed_jobs
        self.say(f"{what} ({n} of {limit} failures in a row)")
        return n >= limit

    def log_tail(self, job: Job) -> list[str]:
        """The last lines of a job's error and output logs, labelled by file."""
        lines: list[str] = []
        for ext in ("err", "out"):
            p = self.plan.log_directory / f"{self.plan.job_name}-{job.job_id}.{ext}"
            if not p.exists():
                continue
            text = [x for x in p.read_text(errors="replace").splitlines() if x.strip()]
            lines += [f"{p}: {x}" for x in text[-LOG_TAIL_LINES:]]
        return lines

    def describe(self) -> str:
        """A one-line account of the jobs, for the sweep's summary."""
        c = self.counts
        return f"{c.submitted} SLURM jobs submitted, {c.ended} ended early"

    # ------------------------------------------------------------------------- stop
    def close(self) -> None:
        """Cancel the live jobs, then close the client and the scheduler."""
        with _signals_ignored():
            ids = [j.job_id for j in self.jobs.values()]
            if ids:
                r = _run(["scancel", *ids], QUERY_TIMEOUT_S)
                if r.returncode == 0:
                    self.say(f"cancelled job{'s' * (len(ids) > 1)} {' '.join(ids)}")
                else:
                    self.say(f"scancel {' '.join(ids)} failed: {'; '.join(_message(r))}")
                self.jobs.clear()
            if self.client is not None:
                self.client.close()
            if self.cluster is not None:
                self.cluster.close()
