"""Reading results: the sweep's inbox, where each trainer announces its result
(``trainer/results.py``), and the result files themselves.

One listing per poll finds every new result, whatever the number of running or finished trials;
only the results it names are read (plus those of attempts the backend says ended). A marker is
deleted once the result it announced is in the journal, so the listing stays short.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from controller import log
from controller.sweep.trials import parse_result
from trainer.contract import (
    FILE_RESULT,
    FILE_TRIAL,
    MAX_RESULT_BYTES,
    TrialResult,
    inbox_key,
    inbox_prefix,
    trial_prefix,
)
from trainer.store import NotFound, Store, StoreError, TooLarge


class Inbox:
    def __init__(self, store: Store, sweep: str) -> None:
        self.store, self.sweep = store, sweep
        self.announced: set[str] = set()  # markers seen and not deleted yet
        # why a trial's result.json could not be taken (a store error, another trial's token),
        # for its reason when its attempt ends
        self.unreadable: dict[str, str] = {}

    def poll(self) -> set[str]:
        """Trial ids whose result was announced (one listing); remembered for ``clear``."""
        try:
            keys = self.store.list_after(inbox_prefix(self.sweep), "")
        except StoreError as exc:  # a poll without the inbox: results come as attempts end
            log.event("store.error", logging.WARNING, what="inbox", error=str(exc))
            return set()
        announced = {key.rpartition("/")[2] for key in keys}
        self.announced |= announced
        return announced

    def clear(self, unread: Callable[[str], bool]) -> None:
        """Delete the markers whose result the journal holds now: all but the ``unread`` ones
        (announced, not read yet: a store error)."""
        for trial_id in sorted(self.announced):
            if unread(trial_id):
                continue
            try:
                self.store.delete(inbox_key(self.sweep, trial_id))
            except StoreError as exc:
                log.event("store.error", logging.WARNING, what="inbox", error=str(exc))
                continue
            self.announced.discard(trial_id)

    def read_result(self, trial_id: str, token: str | None) -> TrialResult | str | None:
        """The trial's result, an error string for an invalid or oversized one, or None if not
        there yet or not this trial's (its ``token`` is not the trial.json's)."""
        key = f"{trial_prefix(self.sweep, trial_id)}/{FILE_RESULT}"
        try:
            raw = self.store.get_limited(key, MAX_RESULT_BYTES)
        except NotFound:
            self.unreadable.pop(trial_id, None)
            return None
        except TooLarge as exc:
            return f"{FILE_RESULT} too large: {exc}"
        except StoreError as exc:
            log.event("store.error", logging.WARNING, trial=trial_id, error=str(exc))
            self.unreadable[trial_id] = f"could not be read: {exc}"
            return None
        self.unreadable.pop(trial_id, None)
        result = parse_result(raw, trial_id)
        if token is not None and isinstance(result, TrialResult) and result.token != token:
            # Not the trial's own: its trainer may still write the real one over it, so wait
            # for the attempt to end rather than fail the trial now.
            carried = "no token" if result.token is None else "another trial's token"
            why = (
                f"was rejected: it carries {carried}, not the one in this trial's "
                f"{FILE_TRIAL} (written by another trial, a copied folder, or a trainer older "
                "than the controller)"
            )
            if self.unreadable.get(trial_id) != why:
                log.event("result.rejected", logging.WARNING, trial=trial_id, why=why)
            self.unreadable[trial_id] = why
            return None
        return result
