"""``python -m tests.controller.kill_run SWEEP.yaml K [COMPACT_BYTES]``: ``kubohb run SWEEP.yaml
--json`` with a store that SIGKILLs this process right after its K-th successful write, and, with
COMPACT_BYTES, a journal that compacts as soon as its entries pass that many bytes (so kills land
inside compactions too).

The resume test uses it to stop the controller at a chosen point of its write protocol. The store
is wrapped here, by the test, and passed in: production code reads no test switch.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from controller import log
from controller.sweep import journal
from controller.sweep.runner import open_sweep_store, run_sweep
from controller.sweep.spec import read_sweep
from controller.sweep.status import summarize
from trainer.store import Store
from trainer.store.counting import CountingStore


class KillAfterWrites(CountingStore):
    """SIGKILLs this process right after the k-th successful put, saying on stderr which write
    it was (``test.killed_after``: the operation and the key)."""

    def __init__(self, inner: Store, writes: int) -> None:
        super().__init__(inner)
        self.writes = writes

    def _after_put(self, op: str, key: str, size: int) -> None:
        if self.counts["put"] >= self.writes:
            print(json.dumps({"event": "test.killed_after", "op": op, "key": key}), file=sys.stderr)
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str]) -> int:
    sweep_file, writes, *compact = argv
    if compact:
        journal.MIN_COMPACT_BYTES = int(compact[0])
    log.setup()
    spec, text = read_sweep(sweep_file)
    store = KillAfterWrites(open_sweep_store(spec), int(writes))
    outcome = run_sweep(spec, text, store=store)
    print(json.dumps({**summarize(outcome.state), "exit_code": outcome.exit_code}, default=str))
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
