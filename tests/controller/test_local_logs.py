"""A local trial's log: capped (head, marker, tail) in the wrapper's memory, the run folder and the
store; put to the store while the trial runs; a failing store never ends the trial."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from controller.backends.local.logs import CappedLog
from controller.sweep import runner
from controller.sweep.journal import load_state
from controller.sweep.logs import attempt_log_key, saved_attempts
from controller.sweep.spec import parse_sweep
from tests.controller.local_trials import launch, sh_backend, wait
from tests.sweeps import kubohb, synthetic_sweep
from trainer.store import open_store

MARKER = re.compile(rb"\n?=== kubohb: (\d+) bytes of output dropped here [^\n]*\n")


@given(
    chunks=st.lists(st.binary(max_size=300), max_size=30),
    cap=st.integers(1, 600),
    head=st.none() | st.integers(0, 600),
    offset=st.integers(0, 700),
)
def test_the_capped_log_keeps_head_and_tail_and_counts_the_rest(
    chunks: list[bytes], cap: int, head: int | None, offset: int
) -> None:
    log = CappedLog(cap, head)
    for chunk in chunks:
        log.write(chunk)
    data = b"".join(chunks)
    parts = log.chunks()
    if len(data) <= cap:  # nothing dropped: the log is the output, and grows by appends
        assert b"".join(parts) == data
        new = log.since(offset)
        assert new is not None and b"".join(new[0]) == data[offset:] and new[1] == len(data)
        return
    assert log.since(offset) is None  # the copy must be rewritten whole
    first, marker, tail = parts[0], parts[1], b"".join(parts[2:])
    dropped = MARKER.fullmatch(marker)
    assert dropped, marker
    assert first == data[: log.head_cap]
    assert data.endswith(tail) and len(tail) <= log.tail_cap
    assert len(first) + int(dropped.group(1)) + len(tail) == len(data)
    assert log.written == len(data)


def _until(path: Path, text: bytes, timeout: float = 20) -> bytes:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and text in (data := path.read_bytes()):
            return data
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}")


def test_a_flood_of_output_is_capped_everywhere(tmp_path: Path) -> None:
    cap = 256 * 1024
    flood = 80_000_000  # the old wrapper read all of it into memory at the end
    backend = sh_backend(
        tmp_path,
        f"echo FIRST-LINE; yes 'filler 0123456789' | head -c {flood}; echo; echo LAST-LINE; "
        "sleep 30",
        log_cap_mb=cap / 2**20,
        log_upload_interval_s=0.2,
    )
    launch(backend, "t")
    folder = tmp_path / "local" / "sw" / "t"
    stored = tmp_path / "store" / "sw" / "trials" / "t" / "trainer.log"
    _until(stored, b"LAST-LINE")  # the flood has gone through the wrapper
    wrapper = json.loads((folder / "proc.json").read_text())["pid"]
    peak_kb = int(re.findall(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{wrapper}/status").read_text())[0])
    assert peak_kb < 60_000, f"the wrapper's memory peaked at {peak_kb} kB"
    backend.cancel("t")
    wait(backend, "t", "exited")
    for log in (stored.read_bytes(), (folder / "trainer.log").read_bytes()):
        assert len(log) <= cap + 512
        assert log.index(b"FIRST-LINE") < 100
        dropped = MARKER.search(log)
        assert dropped and int(dropped.group(1)) > flood - cap
        assert b"LAST-LINE" in log[dropped.end() :]
        assert log.rstrip().endswith(b"attempt 1 ended: exit 143 cancelled")


def test_the_log_reaches_the_store_while_the_trial_runs(tmp_path: Path) -> None:
    backend = sh_backend(tmp_path, "echo early-output; sleep 30", log_upload_interval_s=0.2)
    launch(backend, "t")
    _until(tmp_path / "store" / "sw" / "trials" / "t" / "trainer.log", b"early-output")
    assert backend.poll(["t"])["t"].phase == "running"
    backend.cancel("t")
    wait(backend, "t", "exited")


def test_a_failing_store_is_logged_and_never_ends_the_trial(tmp_path: Path) -> None:
    (tmp_path / "store" / "sw").mkdir(parents=True)
    (tmp_path / "store" / "sw" / "trials").write_text("a file where the trials' folder belongs")
    backend = sh_backend(tmp_path, "echo hello; sleep 1; exit 4", log_upload_interval_s=0.2)
    launch(backend, "t")
    assert wait(backend, "t", "exited").exit_code == 4
    folder = tmp_path / "local" / "sw" / "t"
    events = [json.loads(line) for line in (folder / "wrapper.log").read_text().splitlines()]
    failed = [e for e in events if e["event"] == "trial.log_upload_failed"]
    assert len(failed) >= 2, events  # tried again while it ran, and at the end
    log = (folder / "trainer.log").read_text()
    assert "hello" in log and "attempt 1 ended: exit 4" in log
    assert "log upload to file://" in log and "failed" in log


def test_a_failed_attempts_output_is_kept_per_attempt(tmp_path: Path) -> None:
    """Through the sweep loop: a trainer that crashes, and one that hangs until its deadline,
    each leave their attempts' output in the trial's folder (the store's trainer.log is the next
    attempt's once it runs), and `kubohb logs` prints it."""
    script = (
        'case "$KUBOHB_TRIAL" in *it0-*) echo "hung at step 7"; sleep 60;; '
        '*) echo "cuda error: an illegal memory access"; exit 1;; esac'
    )
    spec = synthetic_sweep(
        tmp_path,
        "lg",
        budget={"min": 1, "max": 1},
        stop={"max_iterations": 2},
        trainer={"command": ["sh", "-c", script]},
        trials={"max_attempts": 2, "startup_allowance_s": 1, "timeout_factor": 1},
    )
    text = yaml.safe_dump(spec)
    outcome = runner.run_sweep(parse_sweep(text), text)
    assert outcome.reason == "max_iterations"
    store = open_store(spec["store"]["url"])
    state = load_state(store, "lg")
    assert state is not None and len(state.trials) == 2
    for trial, record in state.trials.items():
        words = b"hung at step 7" if "it0-" in trial else b"illegal memory access"
        kept = saved_attempts(store, "lg", trial)
        assert record.state == "FAILED"
        assert kept == list(range(1, record.attempts + 1)), (trial, record.error)
        for attempt in kept:
            assert words in store.get(attempt_log_key("lg", trial, attempt))
    hung = next(t for t in state.trials if "it0-" in t)
    proc = kubohb("logs", spec["store"]["url"] + "/lg", hung)
    assert proc.returncode == 0 and "hung at step 7" in proc.stdout, proc.stderr
