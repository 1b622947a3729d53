"""Scale: the controller's cost per trial as a sweep grows, on the simulator and the API emulation.

    python -m benchmarks scale [--sizes 1000 10000 50000] [--running 100 1000] [--skip-k8s]
                               [--max-model-points N] [--out figures.json]

1. Sweeps of ``--sizes`` trials with ``--running`` running at once, each in a fresh process (so
   its peak RSS is its own): the real scheduler, BOHB (async promotions, no iteration limit, the
   BOHB paper's budgets 400 s .. 3 h, eta 3) and journal against ``SimulatedBackend`` in virtual
   time, with a ``FileStore`` on /dev/shm (the store's bytes are not the controller's memory).
   The simulated trainers write through their own store object; the controller's is wrapped to
   count its requests and bytes. Figures: controller CPU per trial in each tenth of the trials
   (cut by results and by launches, with the ticks and the CPU per tick in each), bytes the
   controller writes per trial (journal entries, snapshots, trial.json files), store requests
   per poll, the biggest object it writes, peak RSS, and two restarts from the store in a fresh
   process: as it was left (the final snapshot), and the worst case, the snapshot before the
   last compaction plus every entry after it (the most a restart ever reads: compaction is due
   when the entries outweigh the snapshot).
2. Store requests per poll with 1,000 trials running and no new result: hour-long trials, the
   clock ticking through every poll interval once all of them run.
3. 1,000 concurrent launches against the API server emulation (tests/k8s) through the real
   scheduler and Kubernetes backend, pods that run longer than the measurement: Jobs/s, polls
   during the launches, Jobs the controller deleted (none is past its running deadline, so any
   deletion would be a bug), API requests per trial.

The ACCEPTANCE block checks the issue's targets at 50,000 trials with 1,000 running; the program
exits 1 when one fails. Figures go into docs/benchmarks.md ("Scale").
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from controller.backends.simulated import SimClock, SimulatedBackend, SyntheticObjective
from controller.sweep.runner import load_or_create, one_blas_thread
from controller.sweep.scheduler import Scheduler
from controller.sweep.spec import SweepSpec, parse_sweep
from controller.sweep.state import SweepState
from trainer.store import FileStore
from trainer.store.counting import CountingStore

SPACE = [
    {"name": "x", "type": "float", "low": -3.0, "high": 3.0},
    {"name": "y", "type": "float", "low": -3.0, "high": 3.0},
    {"name": "act", "type": "categorical", "choices": ["relu", "tanh"]},
]
BUDGET = {"unit": "seconds", "min": 400, "max": 10800, "eta": 3}
# The quiet polls: every trial an hour long, so no result arrives for 120 polls after the launches
QUIET_BUDGET = {"unit": "seconds", "min": 3600, "max": 3600, "eta": 3}
# Acceptance (the issue's): at 50,000 trials with 1,000 running
ACCEPT = {"trials": 50_000, "running": 1000}
CPU_RATIO, BYTES_PER_TRIAL, RSS_MB, RESTART_S, REQUESTS_PER_POLL, JOBS_PER_S = (
    1.3, 10_000, 300, 10.0, 3, 20.0
)  # fmt: skip


class Metered(CountingStore):
    """The controller's store: requests, bytes and the biggest object it writes. Before a
    snapshot is replaced, the old one is copied aside on disk (``previous``, kernel to kernel,
    never through this process's memory), to rebuild the worst-case restart afterwards."""

    def __init__(self, inner: FileStore) -> None:
        super().__init__(inner)
        self.dir = inner.dir
        self.bytes = 0
        self.biggest = ("", 0)
        self.snapshots = 0
        self.previous = inner.dir / "previous-state.json"
        self.rss_peak = 0.0  # sampled at each write: a compaction holds BOHB's state dict

    def _wrote(self, key: str, size: int) -> None:
        self.rss_peak = max(self.rss_peak, _rss_mb())
        self.bytes += size
        if size > self.biggest[1]:
            self.biggest = (key, size)
        if key.endswith("/state.json"):
            self.snapshots += 1
            current = self.dir / key
            if current.exists():
                shutil.copyfile(current, self.previous)

    def put(self, key: str, data: bytes) -> None:
        self._wrote(key, len(data))
        super().put(key, data)

    def put_new(self, key: str, data: bytes) -> None:
        self._wrote(key, len(data))
        super().put_new(key, data)

    def put_file(self, path: str | Path, key: str) -> None:
        self._wrote(key, Path(path).stat().st_size)
        super().put_file(path, key)


class SimMeter:
    """CPU seconds spent in the simulated cluster and its trainers (launch, poll, cancel, and the
    events its clock runs: pods starting, results written), which the controller's CPU excludes:
    on a real cluster that work is the kubelet's and the trainers'."""

    def __init__(self) -> None:
        self.cpu = 0.0

    def timed(self, fn: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu += time.process_time() - t0

        return call


class TimedBackend:
    """The simulator behind a meter (the scheduler sees the Backend interface unchanged)."""

    def __init__(self, backend: SimulatedBackend, meter: SimMeter) -> None:
        self._backend = backend
        self.launch = meter.timed(backend.launch)
        self.poll = meter.timed(backend.poll)
        self.cancel = meter.timed(backend.cancel)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


class TimedClock:
    """The simulator's clock behind the meter; ``ticking``: through every poll interval (polls
    where nothing happens) instead of jumping to the next event."""

    def __init__(self, clock: SimClock, meter: SimMeter, ticking: bool) -> None:
        self.clock, self.ticking = clock, ticking
        self._sleep = meter.timed(clock.sleep)

    def now(self) -> datetime:
        return self.clock.now()

    def sleep(self, seconds: float, wake_at: datetime | None = None) -> None:
        if self.ticking:
            wake_at = self.clock.now() + timedelta(seconds=seconds)
        self._sleep(seconds, wake_at)


def spec_for(
    name: str,
    trials: int,
    running: int,
    store_dir: Path,
    budget: dict[str, Any] = BUDGET,
    max_model_points: int | None = None,
) -> tuple[SweepSpec, str]:
    bohb: dict[str, Any] = {"seed": 0, "promotion": "async"}
    if max_model_points is not None:
        bohb["max_model_points"] = max_model_points
    spec: dict[str, Any] = {
        "name": name,
        "space": {"parameters": SPACE},
        "budget": budget,
        "bohb": bohb,
        "stop": {"max_trials": trials},
        "parallelism": running,
        "poll_interval_s": 30,
        "trainer": {"dataset": "synthetic"},
        "store": {"url": str(store_dir)},
        "backend": {"type": "simulated", "simulated": {"gpus": running, "seed": 0}},
    }
    text = yaml.safe_dump(spec, sort_keys=False)
    return parse_sweep(text), text


@dataclass
class SimFigures:
    trials: int
    running: int
    cpu_ms_per_trial: float
    # (controller CPU ms per trial, ticks) in each tenth of the sweep, cut by results and by
    # launches (the last tenth by results holds the drain: the last `running` trials finishing
    # after the last launch, with ever fewer results per tick)
    by_results: list[tuple[float, int]]
    by_launches: list[tuple[float, int]]
    sim_cpu_s: float  # the simulated cluster's and trainers' CPU, not in the controller's
    bytes_per_trial: float
    state_bytes_per_trial: float  # journal entries and snapshots only
    requests_per_poll_median: float
    requests_per_poll_max: int
    biggest_key: str
    biggest_bytes: int
    rss_mb: float  # peak: the kernel's high-water mark or the largest sample, whichever is more
    snapshot_mb: float
    restart_s: float  # from the store as left (the final snapshot)
    restart_worst_s: float  # the snapshot before the last compaction + every entry after it
    restart_worst_entries: int
    ticks: int
    wall_s: float


def _root() -> Path:
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="kubohb-scale-", dir=base))


_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_mb() -> float:
    """Resident memory now (the kernel updates its high-water mark only now and then)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE / 1e6


class Mark(NamedTuple):
    """The sweep after one tick."""

    cpu: float  # controller CPU seconds so far (the simulator's excluded)
    results: int  # trials finished
    launched: int  # trials handed out
    requests: int  # store requests so far
    running: int  # trials running after the tick


def tenths(marks: list[Mark], n: int, key: str) -> list[tuple[float, int]]:
    """(controller CPU ms per trial, ticks) over each tenth of the sweep, the tenths cut at
    every n/10 trials counted by ``key`` ("results" or "launched")."""
    span = [Mark(0.0, 0, 0, 0, 0), *marks]
    cuts = [
        next(i for i, m in enumerate(span) if getattr(m, key) >= k * n // 10) for k in range(11)
    ]
    return [
        ((span[b].cpu - span[a].cpu) / max(1, n // 10) * 1e3, b - a)
        for a, b in itertools.pairwise(cuts)
    ]


class Run:
    """One simulated sweep in this process, metered: the real scheduler, journal and BOHB."""

    def __init__(self, root: Path, spec: SweepSpec, text: str, ticking: bool) -> None:
        self.root, self.spec, self.text = root, spec, text
        one_blas_thread()  # as `kubohb run` does
        self.trainer_side = FileStore(root)  # the simulated trainers' own store object
        self.store = Metered(FileStore(root))
        sim = SimulatedBackend(
            spec.name, self.trainer_side, spec.backend.simulated,
            objective=SyntheticObjective(spec.budget.max),
        )  # fmt: skip
        self.meter = SimMeter()
        self.clock = TimedClock(sim.clock(), self.meter, ticking)
        self.marks: list[Mark] = []
        self.rss_peak = 0.0
        self._cpu0 = time.process_time()
        state, bohb, journal = load_or_create(spec, text, self.store, self.clock.now())
        backend: Any = TimedBackend(sim, self.meter)
        self.scheduler = Scheduler(
            spec, self.store, backend, bohb, state,
            on_tick=self._on_tick, clock=self.clock, journal=journal,
        )  # fmt: skip

    def cpu(self) -> float:
        return time.process_time() - self._cpu0 - self.meter.cpu

    def _on_tick(self, state: SweepState) -> None:
        done = len(state.trials) - len(self.scheduler.open)  # the loop's own index: O(1)
        running = self.scheduler.running_count()
        self.marks.append(Mark(self.cpu(), done, len(state.trials), self.store.total(), running))
        self.rss_peak = max(self.rss_peak, _rss_mb())

    def rss_mb(self) -> float:
        high_water = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return max(high_water, self.rss_peak, self.store.rss_peak)

    def requests_per_poll(self) -> list[int]:
        return [b.requests - a.requests for a, b in itertools.pairwise(self.marks)]


def run_sim(trials: int, running: int, max_model_points: int | None = None) -> SimFigures:
    """One sweep of ``trials`` trials with ``running`` at once, to its end."""
    root = _root()
    try:
        spec, text = spec_for("scale", trials, running, root, max_model_points=max_model_points)
        run = Run(root, spec, text, ticking=False)
        wall0 = time.perf_counter()
        reason = run.scheduler.run()
        cpu, wall = run.cpu(), time.perf_counter() - wall0
        if reason != "max_trials":
            raise RuntimeError(f"the sweep stopped for {reason!r}, not max_trials")
        rss = run.rss_mb()
        n, store, marks = len(run.scheduler.state.trials), run.store, run.marks
        requests = run.requests_per_poll()
        trial_json = sum(size for _, size in _trial_json_sizes(run.trainer_side, spec.name))
        restart, worst, entries = _restarts(spec, text, root, store)
        return SimFigures(
            trials=n,
            running=running,
            cpu_ms_per_trial=cpu / max(1, n) * 1e3,
            by_results=tenths(marks, n, "results"),
            by_launches=tenths(marks, n, "launched"),
            sim_cpu_s=run.meter.cpu,
            bytes_per_trial=store.bytes / max(1, n),
            state_bytes_per_trial=(store.bytes - trial_json) / max(1, n),
            requests_per_poll_median=statistics.median(requests) if requests else 0.0,
            requests_per_poll_max=max(requests, default=0),
            biggest_key=store.biggest[0].rpartition("/")[2],
            biggest_bytes=store.biggest[1],
            rss_mb=rss,
            snapshot_mb=(root / spec.name / "state.json").stat().st_size / 1e6,
            restart_s=restart,
            restart_worst_s=worst,
            restart_worst_entries=entries,
            ticks=len(marks),
            wall_s=wall,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_quiet(running: int, polls: int = 60) -> list[int]:
    """Store requests in each poll with ``running`` trials running and no new result: hour-long
    trials, the clock ticking through every poll interval once all of them run."""
    root = _root()
    try:
        spec, text = spec_for("quiet", 2 * running, running, root, QUIET_BUDGET)
        run = Run(root, spec, text, ticking=True)
        scheduler = run.scheduler
        scheduler._adopt()
        while len(run.marks) < 10_000:
            scheduler.tick()
            run._on_tick(scheduler.state)
            full = [m for m in run.marks if m.running == running]
            if len(full) > polls:
                break
            run.clock.sleep(spec.poll_interval_s, None)
        pairs = itertools.pairwise(run.marks)
        return [
            b.requests - a.requests
            for a, b in pairs
            if a.running == b.running == running and b.results == a.results
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _trial_json_sizes(store: FileStore, sweep: str) -> list[tuple[str, int]]:
    base = store.dir / sweep / "trials"
    return [(p.name, p.stat().st_size) for p in base.glob("*/trial.json")]


_RESTART = """
import sys
from pathlib import Path
from controller.sweep.runner import load_or_create
from controller.sweep.spec import parse_sweep
from trainer.store import FileStore
text = Path(sys.argv[1]).read_text()
state, bohb, journal = load_or_create(parse_sweep(text), text, FileStore(sys.argv[2]))
assert len(state.trials) > 0
"""


def _restart(spec_file: Path, root: Path) -> float:
    """Wall seconds of a fresh process that rebuilds the sweep from the store (interpreter
    start and imports included, as a rescheduled controller pod pays them)."""
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", _RESTART, str(spec_file), str(root)],
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return time.perf_counter() - t0


def _restarts(spec: SweepSpec, text: str, root: Path, store: Metered) -> tuple[float, float, int]:
    """Seconds to rebuild the sweep from the store: as left, and from the snapshot before the
    last compaction plus the entries after it (the longest a restart reads)."""
    spec_file = root / "sweep.yaml"
    spec_file.write_text(text)
    as_left = _restart(spec_file, root)
    if store.snapshots < 2:
        return as_left, as_left, 0
    snapshot_file = root / spec.name / "state.json"
    final = root / "final-state.json"
    shutil.copyfile(snapshot_file, final)
    shutil.copyfile(store.previous, snapshot_file)
    try:
        worst = _restart(spec_file, root)
    finally:
        shutil.copyfile(final, snapshot_file)
    return as_left, worst, _seq(final) - _seq(store.previous)


def _seq(snapshot: Path) -> int:
    """A snapshot's journal position, read from its head (the field comes before the trials)."""
    with snapshot.open("rb") as f:
        head = f.read(4096).decode(errors="replace")
    match = re.search(r'"seq":(\d+)', head)
    if match is None:
        raise RuntimeError(f"{snapshot}: no seq in its first 4 KB")
    return int(match.group(1))


def _job(job: tuple[str, int, int, int | None]) -> Any:
    kind, trials, running, max_model_points = job
    if kind == "quiet":
        return run_quiet(running)
    return asdict(run_sim(trials, running, max_model_points))


# ---- 3. concurrent launches against the API emulation ------------------------------------------
@dataclass
class K8sFigures:
    launches: int
    launch_s: float
    jobs_per_s: float
    ticks_during: int
    deleted: int
    api_requests_per_trial: float


def run_k8s(trials: int = 1000) -> K8sFigures:
    """The real scheduler and Kubernetes backend launching `trials` trials at once against the
    emulation; the pods "run" for an hour, so none ends while it is measured."""
    from controller.backends.k8s import backend as k8s_backend
    from tests.k8s.apiserver import RunningApiServer
    from tests.k8s.kubelet import FakeKubelet
    from tests.k8s.objects import JOBS

    root = _root()
    original = k8s_backend.load_api_client
    try:
        with RunningApiServer() as server, FakeKubelet(server.store, lambda job, a: "timed") as k:
            k.run_seconds = 3600.0
            k8s_backend.load_api_client = lambda: (server.api_client(), "given")
            spec_dict = yaml.safe_load(spec_for("k8s-scale", trials, trials, root)[1])
            spec_dict["budget"] = {"unit": "seconds", "min": 7200, "max": 7200, "eta": 3}
            spec_dict["poll_interval_s"] = 1
            spec_dict["trainer"] = {"image": "trainer:scale", "dataset": "synthetic"}
            spec_dict["backend"] = {"type": "kubernetes", "kubernetes": {"namespace": "scale"}}
            text = yaml.safe_dump(spec_dict, sort_keys=False)
            spec = parse_sweep(text)
            from controller.sweep.backend import make_backend

            store = FileStore(root)
            backend = make_backend(spec, store)
            state, bohb, journal = load_or_create(spec, text, store)
            scheduler = Scheduler(spec, store, backend, bohb, state, journal=journal)
            scheduler._adopt()
            t0 = time.perf_counter()
            ticks = 0
            while scheduler.running_count() < trials and ticks < 10_000:
                scheduler.tick()
                ticks += 1
            launch_s = time.perf_counter() - t0
            for _ in range(3):  # a few polls with everything launched
                scheduler.tick()
                time.sleep(1)
            requests = sum(n for key, n in server.counts.items())
            deleted = sum(1 for key, _ in server.store.deletes if key[0] == JOBS)
            backend.close()
            return K8sFigures(
                launches=scheduler.running_count(),
                launch_s=launch_s,
                jobs_per_s=trials / launch_s,
                ticks_during=ticks,
                deleted=deleted,
                api_requests_per_trial=requests / trials,
            )
    finally:
        k8s_backend.load_api_client = original
        shutil.rmtree(root, ignore_errors=True)


# ---- the report --------------------------------------------------------------------------------
def _ratio(tenths: list[tuple[float, int]]) -> float:
    """Last tenth over the first; nan where a tenth passed inside one tick (all trials launched
    at once: the tenths cannot be told apart)."""
    if not tenths or any(ticks == 0 for _, ticks in tenths) or not tenths[0][0]:
        return math.nan
    return tenths[-1][0] / tenths[0][0]


def _print_sim(rows: list[dict[str, Any]]) -> None:
    head = (
        "trials", "running", "CPU ms/trial", "last/first tenth (results, launches)", "bytes/trial",
        "state bytes/trial", "req/poll med (max)", "biggest object", "RSS MB", "restart s",
        "worst restart s (entries)", "sim CPU s", "wall s",
    )  # fmt: skip
    table = [list(head)]
    for r in rows:
        table.append(
            [
                f"{r['trials']:,}", f"{r['running']:,}", f"{r['cpu_ms_per_trial']:.2f}",
                f"{_ratio(r['by_results']):.2f}, {_ratio(r['by_launches']):.2f}",
                f"{r['bytes_per_trial']:,.0f}", f"{r['state_bytes_per_trial']:,.0f}",
                f"{r['requests_per_poll_median']:.0f} ({r['requests_per_poll_max']})",
                f"{r['biggest_key']} {r['biggest_bytes'] / 1e6:.1f} MB", f"{r['rss_mb']:.0f}",
                f"{r['restart_s']:.2f}",
                f"{r['restart_worst_s']:.2f} ({r['restart_worst_entries']:,})",
                f"{r['sim_cpu_s']:.0f}", f"{r['wall_s']:.0f}",
            ]
        )  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    print("\ncontroller CPU in each tenth of the sweep: ms per trial (ticks, ms per tick)")
    for r in rows:
        tenth = r["trials"] // 10
        for key in ("by_results", "by_launches"):
            cells = "  ".join(
                f"{ms:.2f} ({ticks}, {ms * tenth / ticks if ticks else math.nan:.1f})"
                for ms, ticks in r[key]
            )
            print(f"  {r['trials']:,}/{r['running']:,} {key}: {cells}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 50_000])
    parser.add_argument("--running", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--jobs", type=int, default=2, help="sweeps at once (processes)")
    parser.add_argument("--skip-k8s", action="store_true", help="no API emulation part")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    parser.add_argument(
        "--max-model-points", type=int, help="bohb.max_model_points of the sweeps (default 1024)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of each sweep (the same seed: the machine's noise)",
    )
    args = parser.parse_args(argv)
    quiet_running = max(args.running)
    mmp = args.max_model_points
    jobs: list[tuple[str, int, int, int | None]] = [
        ("sweep", n, r, mmp)
        for n in args.sizes
        for r in args.running
        if r <= n
        for _ in range(args.repeats)
    ]
    jobs.append(("quiet", 0, quiet_running, None))
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")  # one process per sweep: its own RSS
    with ProcessPoolExecutor(args.jobs, mp_context=context, max_tasks_per_child=1) as pool:
        results = list(pool.map(_job, jobs))
    sims, polls = results[:-1], results[-1]
    print(f"1. simulated sweeps (async promotions, budgets 400..10800 s, eta 3; {sys.platform})")
    _print_sim(sims)
    print(
        f"\n2. store requests per poll with {quiet_running:,} running and no new result, "
        f"{len(polls)} such polls: median {statistics.median(polls) if polls else 'n/a'}, "
        f"max {max(polls, default='n/a')}"
    )
    k8s = None if args.skip_k8s else run_k8s()
    if k8s is not None:
        print(
            f"\n3. {k8s.launches:,} launches against the API emulation: {k8s.launch_s:.1f} s, "
            f"{k8s.jobs_per_s:.1f} Jobs/s, {k8s.ticks_during} polls meanwhile, "
            f"{k8s.deleted} Jobs deleted, {k8s.api_requests_per_trial:.2f} API requests per trial"
        )
    print(f"\nwall {time.perf_counter() - started:.0f} s")
    if args.out:
        payload = {"sims": sims, "quiet": polls, "k8s": asdict(k8s) if k8s else None}
        args.out.write_text(json.dumps(payload, indent=1))
    return 0 if acceptance(sims, polls, k8s) else 1


def acceptance(sims: list[dict[str, Any]], polls: list[int], k8s: K8sFigures | None) -> bool:
    print("\nACCEPTANCE")
    at = (ACCEPT["trials"], ACCEPT["running"])
    rows = [r for r in sims if (r["trials"], r["running"]) == at]
    checks: list[tuple[str, bool | None]] = []
    if not rows:
        checks.append((f"{at[0]:,} trials / {at[1]:,} running", None))
    else:  # over repeats: the median ratio, the worst of the rest
        ratios = [_ratio(r["by_results"]) for r in rows]
        ratio = statistics.median(ratios)
        written = max(r["bytes_per_trial"] for r in rows)
        rss, restart = max(r["rss_mb"] for r in rows), max(r["restart_worst_s"] for r in rows)
        runs = f" (median of {', '.join(f'{x:.2f}' for x in ratios)})" if len(rows) > 1 else ""
        checks += [
            (
                f"CPU per trial, last tenth / first tenth {ratio:.2f}{runs} <= {CPU_RATIO}",
                ratio <= CPU_RATIO,
            ),
            (
                f"bytes written per trial {written:,.0f} <= {BYTES_PER_TRIAL:,}",
                written <= BYTES_PER_TRIAL,
            ),
            (f"controller RSS {rss:.0f} MB <= {RSS_MB}", rss <= RSS_MB),
            (
                f"restart from the store (worst case) {restart:.1f} s <= {RESTART_S}",
                restart <= RESTART_S,
            ),
        ]
    if polls:
        quiet = max(polls)
        checks.append(
            (
                f"store requests per quiet poll {quiet} <= {REQUESTS_PER_POLL}",
                quiet <= REQUESTS_PER_POLL,
            )
        )
    if k8s is not None:
        rate, during = k8s.jobs_per_s, k8s.ticks_during
        checks += [
            (
                f"Jobs/s {rate:.1f} >= {JOBS_PER_S}, {during} polls meanwhile",
                rate >= JOBS_PER_S and during > 1,
            ),
            (
                f"Jobs deleted by the controller {k8s.deleted} (none past its deadline)",
                k8s.deleted == 0,
            ),
        ]
    ok = True
    for text, passed in checks:
        print(f"  {text}: {'not measured' if passed is None else 'PASS' if passed else 'FAIL'}")
        ok &= passed is not False
    print("  acceptance:", "PASS" if ok else "FAIL")
    return ok


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
