"""Checkpoint lifecycle: a finished trial's ``checkpoint.pt`` is deleted once nothing needs it.

A checkpoint serves two readers: a relaunch of the same trial (a LOST or CANCELLED attempt resumes
from it) and the user who wants the trained network of a good config. A promotion trains the
promoted config from scratch as a new trial (the paper's protocol), so once a trial is done its
checkpoint is only worth keeping if its result is among the best. Kept: the ``keep`` best
succeeded trials of every budget (the incumbent is the best of the largest one, so always among
them). Deleted: a failed trial's at once, a succeeded trial's as soon as ``keep`` better ones of
its budget are in. The store then holds at most ``keep`` x budgets checkpoints of finished trials.

Deletes follow the journal entry that records the result (the scheduler's ``_save``), so a crash
never leaves a recorded trial whose checkpoint was needed and is gone; a crash between the entry
and the delete leaves a checkpoint that is never deleted (a restart rebuilds the ranking without
deleting, which would cost one request per finished trial).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable

from controller import log
from controller.sweep.state import SweepState, TrialRecord
from trainer.contract import FILE_CHECKPOINT, trial_prefix
from trainer.store import Store, StoreError


class Checkpoints:
    def __init__(self, store: Store, state: SweepState, keep: int | None) -> None:
        self.store, self.sweep, self.keep = store, state.sweep, keep
        self.best: dict[float, list[tuple[float, str]]] = {}  # budget -> (loss, id), best first
        for t in state.trials.values():
            if keep is not None and t.state == "SUCCEEDED" and t.loss is not None:
                self._rank(t)  # what earlier runs kept or deleted stays as it is
        self.deleted = 0

    def prune(self, finished: Iterable[TrialRecord]) -> None:
        """Delete what the trials that just finished make unneeded."""
        if self.keep is None:
            return
        for t in finished:
            if t.state == "FAILED":
                self._delete(t.trial_id)
            elif t.state == "SUCCEEDED" and t.loss is not None:
                for trial_id in self._rank(t):
                    self._delete(trial_id)

    def _rank(self, t: TrialRecord) -> list[str]:
        """Admit ``t`` to its budget's ranking; the trials that fall out of the best ``keep``."""
        assert t.loss is not None and self.keep is not None
        ranking = self.best.setdefault(t.budget, [])
        bisect.insort(ranking, (t.loss, t.trial_id))
        out = ranking[self.keep :]
        del ranking[self.keep :]
        return [trial_id for _, trial_id in out]

    def _delete(self, trial_id: str) -> None:
        key = f"{trial_prefix(self.sweep, trial_id)}/{FILE_CHECKPOINT}"
        try:
            self.store.delete(key)
        except StoreError as exc:  # a stray checkpoint costs storage, never a result
            log.event("store.error", logging.WARNING, what="checkpoint", error=str(exc))
            return
        self.deleted += 1
