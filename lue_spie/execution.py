"""One way to run independent units of work: in this process, or on a Dask cluster.

Site calibration (chunks of sites) and the cross-validation (one method on one or more folds)
are made of *units* that depend only on their own description and on data shared by all of
them. :class:`Executor` runs such units

- **in this process** (the default, ``ExecutionSettings()``): one after the other, exactly as
  the steps always did;
- on an **embedded Dask cluster** (``ExecutionSettings(workers=N)``, ``--workers N``): a
  :class:`distributed.LocalCluster` of ``N`` worker processes with one thread each, started
  and shut down by the executor;
- on an **existing Dask cluster** (``ExecutionSettings(scheduler="tcp://HOST:8786")``,
  ``--scheduler ADDRESS``): e.g. one started with dask-jobqueue on a SLURM cluster, or on
  Kubernetes.

Why Dask's distributed scheduler rather than a home-made pool: it is what the Pangeo and CUPiD
communities already run on laptops, HPC batch systems (dask-jobqueue) and Kubernetes; it ships
shared data to each worker once, resubmits the units of a worker that died, and has a live
dashboard.

Behaviour on a cluster:

- the data every unit needs is sent to each worker **once** (:meth:`Executor.share`,
  ``client.scatter(..., broadcast=True)``), not once per unit;
- threads never oversubscribe the cores (:func:`apply_threads`): inside every unit torch
  gets ``ExecutionSettings.torch_threads`` (default 1) and the fused evaluation kernel
  (:mod:`lue_spie.model.kernel`) the unit's share of its host's cores: the cores a worker
  process may use (:func:`usable_cores`: CPU affinity and cgroup quota) divided by the
  worker threads on that host (so two one-thread workers on two cores get one thread each);
- a unit lost with its worker is given to another worker by the scheduler (up to
  ``distributed.scheduler.allowed-failures`` times, default 3); a unit that *raises* is run
  again ``retries`` times (default 1: a transient failure such as a full disk or an NFS hiccup
  does not end a run of hours; a real error fails fast enough);
- results come back as the units finish (:func:`distributed.as_completed`), feeding one
  progress report over the units (:func:`lue_spie.progress.progress_bar`);
- the dashboard address is printed when the executor starts or connects to a cluster;
- the cluster is shut down on exit of the ``with`` block, also after an error or a
  ``KeyboardInterrupt`` (the units already finished have written their files, so a rerun
  resumes).

Units write their own files, so on a cluster every worker must see the results folder at the
same path (a shared file system, as on every dask-jobqueue cluster):
:meth:`Executor.check_paths` says so clearly when one does not.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ExecutionSettings",
    "Executor",
    "SchedulerUnreachable",
    "add_execution_arguments",
    "execution_from_args",
    "usable_cores",
    "apply_threads",
    "ensure_threads",
]

#: Port of the Dask dashboard when it is free (Dask's own default); a free one otherwise.
DASHBOARD_PORT = 8787
#: How long to try to reach a ``--scheduler`` address before giving up.
CONNECT_TIMEOUT = "20s"
#: Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also freezes
#: glibc's mmap threshold at 128 KiB: every model array then comes from a fresh mmap (page
#: faults, zeroing), and CMA-ES calibration takes about twice the CPU time
#: (benchmarks/RESULTS.md, scale-out). The embedded cluster's workers are started without it.
_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
# The embedded cluster's workers also run without Dask's statistical profiler (a frequent
# stack sample): it took a sizeable share of a worker's CPU time next to CMA-ES units
# (benchmarks/RESULTS.md, scale-out). The dashboard keeps its task stream and progress; only
# its "Profile" page stays empty.
TRIM_NOTE = (
    "note: the Dask workers run with MALLOC_TRIM_THRESHOLD_ set (Dask's default), which makes "
    "the LUE model about 2x slower; start them without it: put `distributed: nanny: "
    "pre-spawn-environ: MALLOC_TRIM_THRESHOLD_: null` in ~/.config/dask/lue-spie.yaml on the "
    "workers (see the README)")


# ------------------------------------------------------------------------------------ threads
def _cgroup_cpus(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in cores (cgroup v2 ``cpu.max``, or v1's
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``); None when there is none."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (``taskset``, SLURM, a container's
    cpuset), capped by its cgroup's CPU quota (a container's ``--cpus``), at least 1.

    ``os.cpu_count()`` counts the machine's cores, which a process confined to fewer would
    oversubscribe.
    """
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_cpus()
    if quota is not None:
        n = min(n, max(1, int(quota)))
    return max(1, n)


# Numba's thread count is per launching thread, so is the record of what was applied.
_APPLIED = threading.local()


def apply_threads(kernel: int | None = None, torch_threads: int | None = None) -> dict[str, int]:
    """Set this process's compute threads, never more than its cores.

    Args:
        kernel: Threads of the fused evaluation kernel (Numba), which runs one parallel
            region per population (site x candidate rows): it scales with the cores and,
            its rows being independent, its results do not depend on the count. Default:
            :func:`usable_cores`. Capped at them.
        torch_threads: torch's intra-op threads (None: unchanged). torch parallelises each
            elementwise operation with an OpenMP barrier; on a loaded machine a thread that
            waits for a core stalls every operation (benchmarks/RESULTS.md: two threads 3-4x
            slower than one under load), so the steps keep it at 1 unless told otherwise.
            Capped at the cores.

    Returns:
        ``{"kernel": n, "torch": n}``, the counts now in force (the kernel's for the calling
        thread: Numba keeps one count per thread that launches parallel work).
    """
    import torch

    cores = usable_cores()
    n_kernel = cores if kernel is None or kernel <= 0 else min(int(kernel), cores)
    import numba

    # Numba's pool has one thread per core of the machine; the kernel uses the first n.
    n_kernel = max(1, min(n_kernel, numba.config.NUMBA_NUM_THREADS))
    import lue_spie

    if not lue_spie.OMP_PASSIVE:
        # torch was imported before lue_spie, so libgomp's idle threads spin: a second kernel
        # thread would spin beside torch's work (see lue_spie/__init__.py).
        n_kernel = 1
    numba.set_num_threads(n_kernel)
    _APPLIED.kernel = n_kernel
    if torch_threads is not None and torch_threads > 0:
        n = min(int(torch_threads), cores)
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
    return {"kernel": n_kernel, "torch": torch.get_num_threads()}


def ensure_threads() -> None:
    """:func:`apply_threads` with its defaults, unless this thread set its threads already
    (called by the kernel's entry points, so that a script that sets nothing does not run
    Numba's default of one thread per core of the machine on fewer usable cores)."""
    if getattr(_APPLIED, "kernel", None) is None:
        apply_threads()


def _on_a_page() -> bool:
    """In a running Jupyter kernel that no person drives (a chapter run by papermill for the
    book); a process that merely imported ipykernel (a test run) is not one."""
    from lue_spie.progress import progress_mode

    kernelapp = sys.modules.get("ipykernel.kernelapp")
    if kernelapp is None or not kernelapp.IPKernelApp.initialized():
        return False
    return progress_mode() != "bar"


class SchedulerUnreachable(ValueError):
    """No Dask scheduler answers at the given address (a bad ``--scheduler`` value)."""


@dataclasses.dataclass(frozen=True)
class ExecutionSettings:
    """Where independent units run (not part of any result: the same seed gives the same files).

    Attributes:
        workers: 0 runs the units in this process (the default); ``N > 0`` starts an embedded
            :class:`distributed.LocalCluster` of ``N`` worker processes with one thread each.
        scheduler: Address of a running Dask scheduler (e.g. ``"tcp://10.0.0.5:8786"``, or
            ``cluster.scheduler_address`` of a dask-jobqueue cluster); excludes ``workers``.
        torch_threads: torch CPU threads set inside every unit on a cluster (0: leave torch's
            default). In this process the commands' ``--threads`` applies as before.
        kernel_threads: Threads of the fused evaluation kernel inside every unit on a cluster
            (0: the unit's share of its host's usable cores, see :func:`apply_threads`).
        retries: How often a unit that raised is run again on a cluster.
    """

    workers: int = 0
    scheduler: str | None = None
    torch_threads: int = 1
    retries: int = 1
    kernel_threads: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) \
                or self.workers < 0:
            raise ValueError(f"workers = {self.workers!r}: expected an int >= 0 (0 runs in "
                             "this process, N starts a local Dask cluster of N processes)")
        if self.scheduler is not None and (not isinstance(self.scheduler, str)
                                           or not self.scheduler.strip()):
            raise ValueError(f"scheduler = {self.scheduler!r}: expected None or the address "
                             "of a Dask scheduler such as 'tcp://10.0.0.5:8786'")
        if self.scheduler is not None and self.workers:
            raise ValueError(f"workers = {self.workers} and scheduler = {self.scheduler!r}: "
                             "give one of them (workers starts a local cluster, scheduler "
                             "connects to a running one)")
        if isinstance(self.torch_threads, bool) or not isinstance(self.torch_threads, int) \
                or self.torch_threads < 0:
            raise ValueError(f"torch_threads = {self.torch_threads!r}: expected an int >= 0")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) \
                or self.retries < 0:
            raise ValueError(f"retries = {self.retries!r}: expected an int >= 0")
        if isinstance(self.kernel_threads, bool) or not isinstance(self.kernel_threads, int) \
                or self.kernel_threads < 0:
            raise ValueError(f"kernel_threads = {self.kernel_threads!r}: expected an int >= 0")

    @property
    def distributed(self) -> bool:
        """Whether the units run on a Dask cluster."""
        return self.workers > 0 or self.scheduler is not None

    def describe(self) -> str:
        """One line: where the units run."""
        if self.scheduler is not None:
            return f"Dask scheduler at {self.scheduler}"
        if self.workers:
            return f"local Dask cluster of {self.workers} worker process(es)"
        return "in-process"

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-serialisable dict."""
        return dataclasses.asdict(self)


def add_execution_arguments(parser: argparse.ArgumentParser, *, what: str = "the units",
                            where: str = "this process") -> None:
    """Add ``--workers N`` and ``--scheduler ADDRESS`` (mutually exclusive) to a command.

    Args:
        parser: The command's parser.
        what: What runs there, for the help text.
        where: Where it runs by default, for the help text.
    """
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--workers", type=int, default=0, metavar="N",
                       help=f"run {what} on an embedded Dask LocalCluster of N worker "
                            f"processes with one thread each (default 0: in {where}); "
                            "results are identical")
    group.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help=f"run {what} on a running Dask cluster, e.g. tcp://HOST:8786 "
                            "(dask-jobqueue, Kubernetes); workers must see the results "
                            "folder")


def execution_from_args(args: argparse.Namespace) -> ExecutionSettings:
    """The :class:`ExecutionSettings` of a command's ``--workers``/``--scheduler``/``--threads``.

    Raises:
        ValueError: for a negative worker count.
    """
    threads = getattr(args, "threads", None)
    return ExecutionSettings(workers=args.workers, scheduler=args.scheduler,
                             torch_threads=1 if threads is None else int(threads))


# ------------------------------------------------------------------------------ the executor
def _run_unit(fn: Callable[[Any, Any], Any], item: Any, shared: Any, torch_threads: int,
              kernel_threads: int | dict[str, int] = 1) -> Any:
    """What a worker runs for one unit: set its threads, then ``fn(item, shared)``.

    ``kernel_threads`` is a count, or a count per worker address (the worker's share of its
    host's cores; a worker that joined later gets 1).
    """
    if isinstance(kernel_threads, dict):
        try:
            from distributed import get_worker

            kernel_threads = kernel_threads.get(get_worker().address, 1)
        except (ImportError, ValueError):
            kernel_threads = 1
    apply_threads(kernel=kernel_threads, torch_threads=torch_threads or None)
    return fn(item, shared)


def _host_shares(cores: dict[str, int], workers: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Kernel threads per worker: the cores of its host divided by the worker threads there.

    Args:
        cores: Worker address -> :func:`usable_cores` on that worker.
        workers: Worker address -> its scheduler record (``host``, ``nthreads``).
    """
    tasks: dict[str, int] = {}
    for info in workers.values():
        host = str(info.get("host"))
        tasks[host] = tasks.get(host, 0) + int(info.get("nthreads") or 1)
    out = {}
    for addr, info in workers.items():
        host = str(info.get("host"))
        out[addr] = max(1, int(cores.get(addr, 1)) // max(1, tasks[host]))
    return out


def _free_port(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Executor:
    """Runs independent units in this process or on a Dask cluster (see the module docstring).

    Use it as a context manager; the cluster (if any) lives as long as the ``with`` block::

        with Executor(ExecutionSettings(workers=2)) as ex:
            shared = ex.share(data)                      # sent to each worker once
            for i, result in ex.map(work, items, shared=shared, desc="units"):
                ...                                      # as the units finish

    ``work(item, shared)`` must be a module-level function (it is pickled for the workers).

    Args:
        settings: Where to run (default: in this process).
        log: Where the cluster's start-up lines go (dashboard address, workers).
        quiet: Log nothing from the Dask machinery but critical failures (not the note that
            a worker process is still alive and being killed, nor a missed heartbeat that Dask
            recovers from, on a loaded machine; a unit that fails still raises). Default:
            quiet inside a Jupyter kernel, where the book would show every line on stderr as
            an error block.
    """

    def __init__(self, settings: ExecutionSettings | None = None, *,
                 log: Callable[[str], Any] = print, quiet: bool | None = None) -> None:
        self.settings = settings or ExecutionSettings()
        self.log = log
        self.quiet = "ipykernel" in sys.modules if quiet is None else quiet
        self.client: Any = None
        self.cluster: Any = None
        self._futures: list[Any] = []
        self._log_level: int | None = None
        self._environ: dict[str, str] | None = None

    # -- life cycle -----------------------------------------------------------------------
    def __enter__(self) -> Executor:
        if self.settings.distributed:
            try:
                self._start()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def distributed(self) -> bool:
        """Whether this executor runs units on a Dask cluster."""
        return self.settings.distributed

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard's address (None in this process)."""
        return None if self.client is None else self.client.dashboard_link

    def _start(self) -> None:
        import dask
        from distributed import Client, LocalCluster

        # Quiet (a chapter): the Dask machinery's own log lines stay out of the page, errors
        # included: on a loaded machine a worker logs an ERROR for a missed heartbeat that
        # Dask recovers from, and a unit that really fails raises here through its future.
        level = logging.CRITICAL if self.quiet else logging.WARNING
        logger = logging.getLogger("distributed")
        self._log_level = logger.level
        logger.setLevel(level)
        s = self.settings
        if s.scheduler is not None:
            try:
                self.client = Client(s.scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as err:
                raise SchedulerUnreachable(
                    f"--scheduler {s.scheduler}: no Dask scheduler answers there ({err}); "
                    "start one (e.g. dask-jobqueue's SLURMCluster, or `dask scheduler`) and "
                    "pass its address, e.g. tcp://HOST:8786") from None
            n = len(self.client.scheduler_info(n_workers=-1).get("workers", {}))
            self.log(f"connected to the Dask scheduler at {s.scheduler} ({n} worker(s) now); "
                     f"dashboard: {self.dashboard_link}")
            if n:
                trims = self.client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
                if any(v is not None for v in trims.values()):
                    self.log(TRIM_NOTE)
            return
        port = DASHBOARD_PORT if _free_port(DASHBOARD_PORT) else 0
        t0 = time.perf_counter()
        # The nanny sets its environment variables in this process too (distributed's
        # documented caveat); they are put back on close.
        self._environ = dict(os.environ)
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)  # workers inherit this environment
        # A loaded machine (a book build beside other work) can stall a heartbeat for longer
        # than Dask's default TCP timeout; a longer one keeps the connection instead of
        # logging an error and reconnecting.
        with dask.config.set({_TRIM: None, "distributed.worker.profile.enabled": False,
                              "distributed.comm.timeouts.tcp": "120s",
                              "distributed.comm.timeouts.connect": "60s"}):
            self.cluster = LocalCluster(n_workers=s.workers, threads_per_worker=1,
                                        processes=True, silence_logs=level,
                                        dashboard_address=f"127.0.0.1:{port}")
        self.client = Client(self.cluster, set_as_default=False)
        if _on_a_page():
            # A book page: the start-up time and a dashboard on a port of the machine that
            # built it mean nothing to a reader.
            self.log(f"started a local Dask cluster: {s.workers} worker process(es) x 1 thread")
        else:
            self.log(f"started a local Dask cluster: {s.workers} worker process(es) x 1 thread "
                     f"in {time.perf_counter() - t0:.1f} s; dashboard: {self.dashboard_link}")

    def close(self) -> None:
        """Cancel what is still queued and shut the cluster down (idempotent)."""
        client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        futures, self._futures = self._futures, []
        if client is not None:
            with contextlib.suppress(Exception):
                if futures:
                    client.cancel(futures)
            with contextlib.suppress(Exception):
                client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()
        if self._log_level is not None:
            logging.getLogger("distributed").setLevel(self._log_level)
            self._log_level = None
        if self._environ is not None:
            for k in set(os.environ) - set(self._environ):
                del os.environ[k]
            os.environ.update(self._environ)
            self._environ = None

    # -- data and paths ----------------------------------------------------------------------
    def share(self, obj: Any) -> Any:
        """``obj`` for every unit: itself in this process, sent once to each worker on a
        cluster (``client.scatter(obj, broadcast=True)``; workers that join later fetch it
        from a peer)."""
        if self.client is None:
            return obj
        self._wait_for_workers()
        # In a list of one: scatter would send a list's or dict's elements separately.
        return self.client.scatter([obj], broadcast=True, hash=False)[0]

    def check_paths(self, *paths: str | os.PathLike) -> None:
        """Check that every worker sees these folders (units write there themselves).

        Raises:
            ValueError: naming the folder and the workers that cannot see it.
        """
        if self.client is None:
            return
        self._wait_for_workers()
        for p in paths:
            folder = str(Path(p).resolve())
            seen = self.client.run(os.path.isdir, folder)
            blind = sorted(w for w, ok in seen.items() if not ok)
            if blind:
                raise ValueError(
                    f"{folder}: Dask worker(s) {blind[:4]} cannot see this folder; units write "
                    "their results there themselves, so the workers need a shared file system "
                    "with the same path")

    def _wait_for_workers(self) -> None:
        info = self.client.scheduler_info(n_workers=-1)
        if not info.get("workers"):
            self.log("waiting for the first Dask worker to join ...")
            self.client.wait_for_workers(1)

    # -- running units -----------------------------------------------------------------------
    def map(
        self,
        fn: Callable[[Any, Any], Any],
        items: Sequence[Any],
        *,
        shared: Any = None,
        labels: Sequence[str] | None = None,
        desc: str = "units",
        name: str = "unit",
        progress: bool = True,
    ) -> Iterator[tuple[int, Any]]:
        """Run ``fn(item, shared)`` for every item; yield ``(index, result)`` as each finishes.

        One progress report over the units (a bar on a terminal, plain lines elsewhere). In
        this process the units run in the given order; on a cluster in any order (each unit
        is one Dask task named ``name``). The first unit that
        raises (after its retries) cancels the ones not started and its exception is raised
        here; units already finished keep their results.

        Args:
            fn: Module-level function of ``(item, shared)``.
            items: The units.
            shared: Data for every unit (from :meth:`share`).
            labels: One label per unit for the progress bar.
            desc: Label of the progress bar.
            name: Task name shown on the Dask dashboard.
            progress: Show the bar.
        """
        from lue_spie.progress import progress_bar

        labels = list(labels) if labels is not None else [str(i) for i in range(len(items))]
        with progress_bar(total=len(items), desc=desc, unit="unit", enabled=progress) as bar:
            if self.client is None:
                for i, item in enumerate(items):
                    bar.set_postfix_str(labels[i], refresh=True)
                    yield i, fn(item, shared)
                    bar.update(1)
                return
            yield from self._map_cluster(fn, items, shared, labels, name, bar)

    def _map_cluster(self, fn: Callable, items: Sequence[Any], shared: Any,
                     labels: list[str], name: str, bar: Any) -> Iterator[tuple[int, Any]]:
        from distributed import as_completed

        s = self.settings
        kernel_threads: int | dict[str, int] = s.kernel_threads
        if not kernel_threads:
            workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
            kernel_threads = _host_shares(self.client.run(usable_cores), workers)
        index: dict[str, int] = {}
        futures = []
        for i, item in enumerate(items):
            f = self.client.submit(_run_unit, fn, item, shared, s.torch_threads,
                                   kernel_threads, key=f"{name}-{uuid.uuid4().hex}",
                                   retries=s.retries, pure=False)
            index[f.key] = i
            futures.append(f)
        self._futures = futures
        try:
            for f in as_completed(futures, loop=self.client.loop):
                i = index[f.key]
                if f.status != "finished":
                    pending = [g for g in futures if not g.done()]
                    self.client.cancel(pending)
                    f.result()  # raises the unit's own exception
                result = f.result()
                f.release()
                bar.set_postfix_str(labels[i], refresh=False)
                bar.update(1)
                yield i, result
        finally:
            self._futures = [g for g in futures if not g.done()]
