"""The search space: typed parameters, conditions, sampling and the [0, 1] vector encoding.

The encoding is ConfigSpace's (what HpBandSter's KDE sees, spec §2.2): dimensions ordered by
condition depth, then by name; floats scaled linearly or in log space to [0, 1]; ints through a
float range widened by ±0.49999 so every integer gets an equal share of [0, 1]; categoricals as
their choice index (not scaled); inactive parameters as NaN.
"""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

# Strict types: pydantic must not turn True into 1 or "1" into 1 for a categorical choice.
Choice = StrictBool | StrictInt | StrictFloat | StrictStr
INT_WIDEN = 0.49999  # ConfigSpace's widening of an int range before scaling


class InvalidConfigError(ValueError):
    """A config does not fit the search space; the message names the parameter."""


class _Param(BaseModel):
    # inf/nan refused as bounds, defaults and choices (a nan choice never equals itself)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: Annotated[str, Field(min_length=1, max_length=100)]
    # All listed parents must take one of the listed values for this parameter to be active.
    active_if: dict[str, list[Choice]] | None = None

    def _check_condition_values(self) -> None:
        for parent, values in (self.active_if or {}).items():
            if not values:
                raise ValueError(
                    f"parameter {self.name!r}: active_if.{parent} lists no values; "
                    "give at least one parent value"
                )


class _Numeric(_Param):
    log: bool = False
    if TYPE_CHECKING:  # declared by FloatParam and IntParam with their own types
        low: float
        high: float
        default: float | None

    def _check_range(self) -> None:
        low, high = self.low, self.high
        if not low < high:
            raise ValueError(
                f"parameter {self.name!r}: low ({low}) must be < high ({high}); "
                "use a categorical with one choice for a constant"
            )
        if self.log and low <= 0:
            raise ValueError(f"parameter {self.name!r}: log scale needs low > 0 (got low={low})")
        default = self.default
        if default is not None and not low <= default <= high:
            raise ValueError(
                f"parameter {self.name!r}: default ({default}) is outside [low, high] = "
                f"[{low}, {high}]"
            )
        self._check_condition_values()

    def _scaled_bounds(self, widen: float) -> tuple[float, float]:
        low, high = self.low - widen, self.high + widen
        return (math.log(low), math.log(high)) if self.log else (low, high)

    def _to_unit(self, value: float, widen: float) -> float:
        lo, hi = self._scaled_bounds(widen)
        x = math.log(value) if self.log else value
        return min(max((x - lo) / (hi - lo), 0.0), 1.0)

    def _from_unit(self, v: float, widen: float) -> float:
        lo, hi = self._scaled_bounds(widen)
        x = lo + float(v) * (hi - lo)
        return math.exp(x) if self.log else x


class FloatParam(_Numeric):
    type: Literal["float"]
    # Lax floats on purpose: YAML 1.1 reads `1e-4` as a string, which pydantic then parses.
    low: float
    high: float
    default: float | None = None

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        self._check_range()
        return self

    def encode_value(self, value: Any) -> float:
        return self._to_unit(float(value), 0.0)

    def decode_value(self, v: float) -> float:
        return min(max(self._from_unit(v, 0.0), float(self.low)), float(self.high))

    def check_value(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidConfigError(f"parameter {self.name!r}: {value!r} is not a number")
        if not self.low <= value <= self.high:
            raise InvalidConfigError(
                f"parameter {self.name!r}: {value!r} is outside [{self.low}, {self.high}]"
            )
        return float(value)


class IntParam(_Numeric):
    type: Literal["int"]
    low: int
    high: int
    default: int | None = None

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        self._check_range()
        return self

    def encode_value(self, value: Any) -> float:
        return self._to_unit(float(value), INT_WIDEN)

    def decode_value(self, v: float) -> int:
        return int(min(max(np.rint(self._from_unit(v, INT_WIDEN)), self.low), self.high))

    def check_value(self, value: Any) -> int:
        is_integral_float = isinstance(value, float) and value.is_integer()
        if isinstance(value, bool) or not (isinstance(value, int) or is_integral_float):
            raise InvalidConfigError(f"parameter {self.name!r}: {value!r} is not an integer")
        if not self.low <= value <= self.high:
            raise InvalidConfigError(
                f"parameter {self.name!r}: {value!r} is outside [{self.low}, {self.high}]"
            )
        return int(value)


class CategoricalParam(_Param):
    type: Literal["categorical"]
    choices: list[Choice]
    default: Choice | None = None

    @field_validator("choices", "default", mode="before")
    @classmethod
    def _finite(cls, v: Any) -> Any:
        # before the union: one clear error instead of one per member of Choice
        for c in v if isinstance(v, list) else [v]:
            if isinstance(c, float) and not math.isfinite(c):
                raise ValueError(f"{c!r} is not a finite number")
        return v

    @model_validator(mode="after")
    def _check(self) -> CategoricalParam:
        if not self.choices:
            raise ValueError(f"parameter {self.name!r}: choices is empty; list at least one")
        keys = [_key(c) for c in self.choices]
        if len(set(keys)) != len(keys):
            raise ValueError(f"parameter {self.name!r}: choices has duplicates {self.choices}")
        if self.default is not None and _key(self.default) not in keys:
            raise ValueError(
                f"parameter {self.name!r}: default {self.default!r} is not one of the choices"
            )
        self._check_condition_values()
        return self

    def index(self, value: Any) -> int:
        key = _key(value)
        for i, choice in enumerate(self.choices):
            if _key(choice) == key:
                return i
        raise InvalidConfigError(
            f"parameter {self.name!r}: {value!r} is not one of the choices {self.choices}"
        )

    def encode_value(self, value: Any) -> float:
        return float(self.index(value))

    def decode_value(self, v: float) -> Any:
        return self.choices[min(max(int(np.rint(v)), 0), len(self.choices) - 1)]

    def check_value(self, value: Any) -> Any:
        return self.choices[self.index(value)]


def _key(value: Any) -> tuple[str, Any]:
    """Comparison key of a choice: True == 1 in Python, but [1, True] are two distinct choices."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, str):
        return ("str", value)
    return ("num", value)


Parameter = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


class SearchSpace(BaseModel):
    """A validated search space. Build with ``model_validate``, ``from_yaml`` or ``builtin``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parameters: Annotated[list[Parameter], Field(min_length=1)]

    @model_validator(mode="after")
    def _check_graph(self) -> SearchSpace:
        by_name: dict[str, Any] = {}
        for p in self.parameters:
            if p.name in by_name:
                raise ValueError(f"parameter {p.name!r}: duplicate name; names must be unique")
            by_name[p.name] = p
        for p in self.parameters:
            for parent, values in (p.active_if or {}).items():
                if parent == p.name:
                    raise ValueError(f"parameter {p.name!r}: active_if names itself")
                if parent not in by_name:
                    raise ValueError(
                        f"parameter {p.name!r}: active_if names unknown parent {parent!r}"
                    )
                if by_name[parent].type == "float":
                    raise ValueError(
                        f"parameter {p.name!r}: active_if on the float parameter {parent!r} "
                        "matches only that exact value, which sampling never draws; condition "
                        "on a categorical or int parameter"
                    )
                for value in values:
                    try:
                        by_name[parent].check_value(value)
                    except InvalidConfigError as exc:
                        raise ValueError(
                            f"parameter {p.name!r}: active_if.{parent} value {value!r} can "
                            f"never match: {exc}"
                        ) from None
        _depths(self.parameters)  # raises on a cycle
        return self

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, source: str | Path) -> SearchSpace:
        """Load from a YAML file path or YAML text: ``{parameters: [...]}`` or a bare list."""
        text = str(source)
        is_path = isinstance(source, Path) or (
            "\n" not in text and (text.endswith((".yaml", ".yml")) or _is_file(text))
        )
        data = yaml.safe_load(Path(text).read_text() if is_path else text)
        if isinstance(data, list):
            data = {"parameters": data}
        return cls.model_validate(data)

    @classmethod
    def builtin(cls, name: str) -> SearchSpace:
        if name not in _BUILTINS:
            raise ValueError(
                f"unknown builtin search space {name!r}; choose from {list(_BUILTINS)}"
            )
        return cls.model_validate({"parameters": _BUILTINS[name]})

    # ---- derived structure (cached: the model is frozen) --------------------------------------
    @cached_property
    def ordered(self) -> list[Any]:
        """Parameters in encoding order: by condition depth, then name (ConfigSpace's order)."""
        depth = _depths(self.parameters)
        return sorted(self.parameters, key=lambda p: (depth[p.name], p.name))

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.ordered]

    @property
    def dim(self) -> int:
        return len(self.parameters)

    @cached_property
    def n_choices(self) -> np.ndarray:
        """Per dimension: number of choices for a categorical, 0 for a numeric parameter."""
        return np.array(
            [len(p.choices) if p.type == "categorical" else 0 for p in self.ordered], dtype=np.int64
        )

    # ---- configs --------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """A prior sample: each dimension uniform on [0, 1] (or over the choices), then decoded."""
        return self.decode(self.sample_vector(rng))

    def sample_vector(self, rng: np.random.Generator) -> np.ndarray:
        u = rng.random(self.dim)
        k = self.n_choices
        return np.where(k > 0, np.floor(u * np.maximum(k, 1)), u)

    def decode(self, vec: np.ndarray | list[float]) -> dict[str, Any]:
        """Vector -> config of the active parameters only (inactive ones are dropped)."""
        config: dict[str, Any] = {}
        for p, v in zip(self.ordered, np.asarray(vec, dtype=float), strict=True):
            if self._active(p, config) and not math.isnan(v):
                config[p.name] = p.decode_value(v)
        return config

    @cached_property
    def conditional(self) -> bool:
        return any(p.active_if for p in self.parameters)

    def active_mask(self, vectors: np.ndarray) -> np.ndarray:
        """(m, d) of full vectors -> whether each dimension is active in what ``decode`` would
        return for that row (a NaN entry is inactive, as are its children)."""
        vectors = np.atleast_2d(vectors)
        active = ~np.isnan(vectors)
        index = {p.name: j for j, p in enumerate(self.ordered)}
        for j, p in enumerate(self.ordered):  # parents come first: they are shallower
            for parent, values in (p.active_if or {}).items():
                k = index[parent]
                allowed = {_key(v) for v in values}
                column = vectors[:, k]
                ok = np.zeros(len(column), dtype=bool)
                for v in np.unique(column[active[:, k]]):
                    if _key(self.ordered[k].decode_value(v)) in allowed:
                        ok |= column == v
                active[:, j] &= active[:, k] & ok
        out: np.ndarray = active
        return out

    def encode(self, config: dict[str, Any]) -> np.ndarray:
        """Config -> vector; inactive or absent parameters are NaN."""
        return np.array(
            [p.encode_value(config[p.name]) if p.name in config else math.nan for p in self.ordered]
        )

    def validate_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Check a config and return it normalised (typed values, encoding order)."""
        unknown = sorted(set(config) - set(self.names))
        if unknown:
            raise InvalidConfigError(
                f"parameter {unknown[0]!r}: not in the search space {self.names}"
            )
        out: dict[str, Any] = {}
        for p in self.ordered:
            active = self._active(p, out)
            if active and p.name not in config:
                raise InvalidConfigError(f"parameter {p.name!r}: missing (it is active)")
            if not active and p.name in config:
                raise InvalidConfigError(
                    f"parameter {p.name!r}: given but inactive (active_if {p.active_if} fails)"
                )
            if active:
                out[p.name] = p.check_value(config[p.name])
        return out

    @staticmethod
    def _active(p: Any, config: dict[str, Any]) -> bool:
        for parent, values in (p.active_if or {}).items():
            if parent not in config:
                return False
            if _key(config[parent]) not in {_key(v) for v in values}:
                return False
        return True


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except OSError:  # e.g. one-line flow-style YAML longer than a file name may be
        return False


def _depths(params: list[Any]) -> dict[str, int]:
    """Condition depth per parameter (unconditional = 1); raises ValueError on a cycle."""
    parents = {p.name: list((p.active_if or {}).keys()) for p in params}
    depth: dict[str, int] = {}

    def visit(name: str, path: tuple[str, ...]) -> int:
        if name in depth:
            return depth[name]
        if name in path:
            cycle = " -> ".join((*path[path.index(name) :], name))
            raise ValueError(f"parameter {name!r}: active_if forms a cycle ({cycle})")
        known = [q for q in parents[name] if q in parents]
        depth[name] = 1 + max((visit(q, (*path, name)) for q in known), default=0)
        return depth[name]

    for p in params:
        visit(p.name, ())
    return depth


def _zela2018() -> list[dict[str, Any]]:
    # Zela et al. 2018 (spec §5.1): 10 architecture + 7 training parameters, all unconditional.
    params: list[dict[str, Any]] = []
    for i in (1, 2, 3):
        params.append({"name": f"nr_residual_blocks_{i}", "type": "int", "low": 1, "high": 16,
                       "log": True})  # fmt: skip
    params.append({"name": "initial_filters", "type": "int", "low": 8, "high": 32, "log": True})
    params.append({"name": "widen_factor_1", "type": "float", "low": 0.5, "high": 8.0, "log": True})
    for i in (2, 3):
        params.append({"name": f"widen_factor_{i}", "type": "float", "low": 0.5, "high": 4.0,
                       "log": True})  # fmt: skip
    for i in (1, 2, 3):
        params.append({"name": f"res_branches_{i}", "type": "int", "low": 1, "high": 5})
    params += [
        {"name": "learning_rate", "type": "float", "low": 1e-3, "high": 1.0, "log": True},
        {"name": "batch_size", "type": "int", "low": 32, "high": 128, "log": True},
        {"name": "weight_decay", "type": "float", "low": 1e-5, "high": 1e-3, "log": True},
        {"name": "momentum", "type": "float", "low": 1e-3, "high": 0.99},
        {"name": "alpha", "type": "float", "low": 0.0, "high": 1.0},
        {"name": "length", "type": "int", "low": 0, "high": 20},
        {"name": "death_rate", "type": "float", "low": 0.0, "high": 1.0},
    ]
    return params


_BUILTINS: dict[str, list[dict[str, Any]]] = {"zela2018": _zela2018()}
