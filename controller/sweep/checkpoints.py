"""Checkpoint lifecycle: a finished trial's ``checkpoint.pt`` is deleted once nothing needs it.

A checkpoint serves three readers: a relaunch of the same trial (a LOST or CANCELLED attempt
resumes from it), a promotion that continues it (``bohb.promotion_resume``), and the user who
wants the trained network of a good config. Kept: the ``keep`` best succeeded trials of every
budget (the incumbent is the best of the largest one, so always among them). Deleted: a failed
trial's at once, a succeeded trial's as soon as ``keep`` better ones of its budget are in and no
promotion may still continue it (``needed``: BOHB has not decided its promotion, or the promoted
trial is out and not finished; then the delete waits, and every save looks again). Without
promotion_resume a promotion trains from scratch (the paper's protocol) and nothing waits. The
store then holds at most ``keep`` x budgets checkpoints of finished trials, plus those the open
promotions need.

Deletes follow the journal entry that records the result (the scheduler's ``_save``), so a crash
never leaves a recorded trial whose checkpoint was needed and is gone; a crash between the entry
and the delete leaves a checkpoint that is never deleted (a restart rebuilds the ranking without
deleting, which would cost one request per finished trial).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterable

from controller import log
from controller.sweep.state import SweepState, TrialRecord
from trainer.contract import FILE_CHECKPOINT, trial_prefix
from trainer.store import Store, StoreError


class Checkpoints:
    def __init__(
        self,
        store: Store,
        state: SweepState,
        keep: int | None,
        needed: Callable[[TrialRecord], bool] | None = None,
    ) -> None:
        self.store, self.sweep, self.keep = store, state.sweep, keep
        self.trials, self.needed = state.trials, needed
        self.best: dict[float, list[tuple[float, str]]] = {}  # budget -> (loss, id), best first
        self.waiting: set[str] = set()  # out of the ranking, but a promotion may continue them
        for t in state.trials.values():
            if keep is not None and t.state == "SUCCEEDED" and t.loss is not None:
                # what earlier runs kept or deleted stays as it is; deletes that waited on a
                # promotion wait again (a delete of what is gone is a no-op)
                for out in self._rank(t):
                    if needed is not None and needed(state.trials[out]):
                        self.waiting.add(out)
        self.deleted = 0

    def prune(self, finished: Iterable[TrialRecord]) -> None:
        """Delete what the trials that just finished make unneeded, and the waiting ones no
        promotion needs any more."""
        if self.keep is None:
            return
        for t in finished:
            if t.state == "FAILED":
                self._delete(t.trial_id)
            elif t.state == "SUCCEEDED" and t.loss is not None:
                for trial_id in self._rank(t):
                    self._delete_or_wait(trial_id)
        if self.waiting and self.needed is not None:
            for trial_id in sorted(self.waiting):
                if not self.needed(self.trials[trial_id]):
                    self.waiting.discard(trial_id)
                    self._delete(trial_id)

    def _delete_or_wait(self, trial_id: str) -> None:
        if self.needed is not None and self.needed(self.trials[trial_id]):
            self.waiting.add(trial_id)
        else:
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
