"""BOHB as a pure ask/tell optimiser, faithful to HpBandSter 0.7.4 (deviations: docs/bohb.md).

``space`` (the search space), ``hyperband`` (the budget schedule), ``kde`` and ``model`` (the
per-budget density model), ``iteration`` (one successive-halving iteration), ``optimizer`` (the
``BOHB`` class), ``protocol`` (what the sweep loop needs of any optimiser). No I/O, and nothing
imported from the rest of the project: the package depends on numpy, scipy and pydantic only.
"""

from controller.bohb.optimizer import BOHB, AlreadyTold, UnknownTrial
from controller.bohb.protocol import Incumbent, Optimizer, Suggestion, trial_id_of
from controller.bohb.space import SearchSpace

__all__ = [
    "BOHB",
    "AlreadyTold",
    "Incumbent",
    "Optimizer",
    "SearchSpace",
    "Suggestion",
    "UnknownTrial",
    "trial_id_of",
]
