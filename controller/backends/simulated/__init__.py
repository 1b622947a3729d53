"""The simulated backend: the real scheduler loop on a simulated GPU cluster, in virtual time.

``options`` (``SimulatedOptions``, the sweep file's ``backend.simulated``), ``objectives`` (what a
finished trial reports), ``clock`` (``SimClock``: virtual time, events, jumps to the next moment
the loop must act) and ``backend`` (``SimulatedBackend``: quota, pod starts, preemptions, crashes,
checkpoints; results written to the store as a trainer writes them).
"""

from controller.backends.simulated.backend import AttemptRecord, SimTotals, SimulatedBackend
from controller.backends.simulated.clock import SimClock
from controller.backends.simulated.objectives import Objective, SyntheticObjective
from controller.backends.simulated.options import SimulatedOptions

__all__ = [
    "AttemptRecord",
    "Objective",
    "SimClock",
    "SimTotals",
    "SimulatedBackend",
    "SimulatedOptions",
    "SyntheticObjective",
]
