"""A problem's space (kubohb's dict form) as a ConfigSpace ``ConfigurationSpace``, for the peers
that take one (HpBandSter in ``.venv-hpbandster``, ConfigSpace 0.6; DEHB in ``.venv-peers``,
ConfigSpace 1.x). Imported only inside those venvs."""

from __future__ import annotations

import warnings
from typing import Any

import ConfigSpace as CS  # noqa: N817 - the package's own idiom
import numpy as np

warnings.filterwarnings("ignore", category=DeprecationWarning, module=__name__)


def config_space(parameters: list[dict[str, Any]], seed: int) -> CS.ConfigurationSpace:
    # ConfigSpace's prior sampler gets its own seed, derived from the run seed: seeding it with the
    # run seed itself would make its MT19937 stream a copy of the global ``np.random`` stream
    # (HpBandSter's coin, candidate and truncnorm draws), coupling the two. kubohb draws all of
    # this from one generator, so neither arm has correlated streams.
    cs_seed = int(np.random.SeedSequence([seed, 2]).generate_state(1)[0])
    cs = CS.ConfigurationSpace(seed=cs_seed)
    for p in parameters:
        log = bool(p.get("log", False))
        if p["type"] == "float":
            hp = CS.UniformFloatHyperparameter(p["name"], p["low"], p["high"], log=log)
        elif p["type"] == "int":
            hp = CS.UniformIntegerHyperparameter(p["name"], p["low"], p["high"], log=log)
        else:
            hp = CS.CategoricalHyperparameter(p["name"], p["choices"])
        cs.add_hyperparameter(hp)
    for p in parameters:  # active_if: an AND of "parent in values" conditions
        conditions = [
            CS.InCondition(cs.get_hyperparameter(p["name"]), cs.get_hyperparameter(parent), values)
            for parent, values in (p.get("active_if") or {}).items()
        ]
        if len(conditions) == 1:
            cs.add_condition(conditions[0])
        elif conditions:
            cs.add_condition(CS.AndConjunction(*conditions))
    return cs
