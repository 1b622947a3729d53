"""The processes of one local trial attempt: found, stopped and reaped, so none outlives it.

A trainer's process group is not its whole tree: a child that calls ``setsid`` leaves the group,
and a child left behind when the trainer exits keeps running. Two things find them all:

- the wrapper is a *child subreaper* (Linux ``PR_SET_CHILD_SUBREAPER``): an orphaned descendant,
  daemonised or not, is reparented to the wrapper instead of init, so every live process of the
  attempt descends from the wrapper by ``ppid`` links in ``/proc``;
- every process of the attempt inherits ``KUBOHB_ATTEMPT_TOKEN`` from the trainer's environment,
  which is what finds them once the wrapper itself is gone (SIGKILLed) and they were reparented
  to init; it misses only a process that dropped its environment.

Where ``/proc`` or prctl is missing (not Linux), nothing is found and the caller falls back to
the trainer's process group.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

TOKEN_VAR = "KUBOHB_ATTEMPT_TOKEN"
PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
_POLL_S = 0.05
_KILL_WAIT_S = 5.0  # past this a process that survives SIGKILL is stuck in the kernel (D state)

Table = dict[int, tuple[int, str]]  # pid -> (ppid, state letter of proc(5))


def become_subreaper() -> str | None:
    """Make this process the reaper of its orphaned descendants; a problem, or None."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            return f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}"
    except (OSError, AttributeError) as exc:  # no libc or no prctl: not Linux
        return f"prctl(PR_SET_CHILD_SUBREAPER) unavailable: {exc}"
    return None


def processes() -> Table:
    """Every process's parent and state, from /proc ({} where there is no /proc)."""
    table: Table = {}
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return table
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # comm may hold spaces and parentheses
        table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def _dead(state: str) -> bool:
    return state in ("Z", "X")  # a zombie has exited, it only waits to be reaped


def _has_token(pid: int, entries: set[bytes]) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # another user's process, or gone
        return False
    return not entries.isdisjoint(environ.split(b"\0"))


def find(roots: Iterable[int], tokens: Iterable[str] = (), *, with_roots: bool = False) -> set[int]:
    """Live processes that descend from ``roots`` or carry one of ``tokens`` in their
    environment; never this process."""
    table = processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    roots = [r for r in roots if r in table]
    found: set[int] = set(roots) if with_roots else set()
    stack = list(roots)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    entries = {f"{TOKEN_VAR}={t}".encode() for t in tokens}
    if entries:
        found.update(p for p in table if p not in found and _has_token(p, entries))
    found.discard(os.getpid())
    return {p for p in found if p in table and not _dead(table[p][1])}


def reap(keep: int | None = None) -> None:
    """Collect this process's exited children, except ``keep`` (a child whose exit status its
    ``Popen`` must still read)."""
    if keep is None:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        return
    me = os.getpid()
    for pid, (ppid, state) in processes().items():
        if ppid == me and _dead(state) and pid != keep:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop(
    search: Callable[[], set[int]],
    grace_s: float,
    reaper: Callable[[], None] | None = None,
    signalled: Iterable[int] = (),
) -> tuple[set[int], set[int]]:
    """SIGTERM what ``search`` finds (and each newcomer, but nothing in ``signalled`` again),
    SIGKILL what is left after ``grace_s``, until none is left. ``reaper`` collects exited
    children between searches (the wrapper's orphans; a controller must not reap its own children
    this way). Returns the processes found and those that outlived SIGKILL."""
    seen: set[int] = set()
    termed = set(signalled)
    end = time.monotonic() + grace_s
    while True:
        if reaper:
            reaper()
        live = search()
        if not live or time.monotonic() >= end:
            break
        signal_all(live - termed, signal.SIGTERM)
        termed |= live
        seen |= live
        time.sleep(_POLL_S)
    end = time.monotonic() + _KILL_WAIT_S
    while live and time.monotonic() < end:
        seen |= live
        # stopped first, so none forks a child between this search and the SIGKILL
        signal_all(live, signal.SIGSTOP)
        signal_all(live, signal.SIGKILL)
        time.sleep(_POLL_S / 2)
        if reaper:
            reaper()
        live = search()
    return seen, live
