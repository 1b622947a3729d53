"""SearchSpace: validation messages, ConfigSpace-compatible encoding, sampling properties."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from controller.bohb.space import InvalidConfigError, SearchSpace

EXAMPLE = {
    "parameters": [
        {"name": "lr", "type": "float", "low": 1e-4, "high": 1, "log": True, "default": 0.1},
        {"name": "depth", "type": "int", "low": 1, "high": 8},
        {"name": "act", "type": "categorical", "choices": ["relu", "tanh"]},
        {"name": "momentum", "type": "float", "low": 0, "high": 1, "active_if": {"act": ["relu"]}},
    ]
}


def _space(*params: dict[str, Any]) -> SearchSpace:
    return SearchSpace.model_validate({"parameters": list(params)})


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ([{"name": "a", "type": "float", "low": 1, "high": 1}], "'a': low (1.0) must be < high"),
        ([{"name": "a", "type": "int", "low": 0, "high": 4, "log": True}], "'a': log scale"),
        ([{"name": "a", "type": "float", "low": 0, "high": 1, "default": 2}], "'a': default"),
        ([{"name": "a", "type": "categorical", "choices": []}], "'a': choices is empty"),
        ([{"name": "a", "type": "categorical", "choices": [1, 1]}], "'a': choices has duplicates"),
        ([{"name": "a", "type": "categorical", "choices": [1], "default": 2}], "'a': default"),
        (
            [{"name": "a", "type": "int", "low": 0, "high": 1}] * 2,
            "'a': duplicate name",
        ),
        (
            [{"name": "a", "type": "int", "low": 0, "high": 1, "active_if": {"b": [0]}}],
            "'a': active_if names unknown parent 'b'",
        ),
        (
            [
                {"name": "a", "type": "categorical", "choices": [0, 1], "active_if": {"b": [0]}},
                {"name": "b", "type": "categorical", "choices": [0, 1], "active_if": {"a": [0]}},
            ],
            "active_if forms a cycle",
        ),
        (
            [
                {"name": "a", "type": "categorical", "choices": ["x"]},
                {"name": "b", "type": "int", "low": 0, "high": 1, "active_if": {"a": ["y"]}},
            ],
            "'b': active_if.a value 'y' can never match",
        ),
        ([{"name": "a", "type": "float", "low": 0, "high": 1, "step": 2}], "step"),
        ([{"name": "a", "type": "unknown"}], "type"),
    ],
)
def test_validation_errors_name_the_parameter_and_field(params: list, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        _space(*params)
    assert fragment in str(info.value)


def test_yaml_text_file_and_bare_list(tmp_path: Path) -> None:
    text = """
parameters:
  - {name: lr, type: float, low: 1e-4, high: 1, log: true}
  - {name: act, type: categorical, choices: [relu, tanh]}
"""
    path = tmp_path / "space.yaml"
    path.write_text(text)
    assert SearchSpace.from_yaml(text) == SearchSpace.from_yaml(path)
    assert SearchSpace.from_yaml(str(path)).names == ["act", "lr"]
    bare = SearchSpace.from_yaml("- {name: x, type: int, low: 1, high: 3}")
    assert bare.names == ["x"]
    no_suffix = tmp_path / "space"
    no_suffix.write_text(text)
    assert SearchSpace.from_yaml(str(no_suffix)).names == ["act", "lr"]
    long_line = "[" + ", ".join(f"{{name: p{i}, type: int, low: 0, high: 1}}" for i in range(20))
    assert SearchSpace.from_yaml(long_line + "]").dim == 20
    assert SearchSpace.from_yaml(text).ordered[1].low == pytest.approx(1e-4)  # YAML 1.1 string


def test_encoding_matches_configspace_examples() -> None:
    space = _space(
        {"name": "blocks", "type": "int", "low": 1, "high": 16, "log": True},
        {"name": "branches", "type": "int", "low": 1, "high": 5},
        {"name": "act", "type": "categorical", "choices": ["relu", "tanh", "elu"]},
        {"name": "lr", "type": "float", "low": 1e-3, "high": 1, "log": True},
    )
    assert space.names == ["act", "blocks", "branches", "lr"]
    vec = space.encode({"blocks": 4, "branches": 1, "act": "elu", "lr": 10**-1.5})
    np.testing.assert_allclose(vec, [2.0, 0.5947, 0.0999984, 0.5], atol=1e-4)
    # Values printed by ConfigSpace 0.6.1 (Configuration(...).get_array()) for log-int [1, 16].
    edges = [space.encode({"blocks": b, "branches": 5, "act": "relu", "lr": 1})[1] for b in (1, 16)]
    np.testing.assert_allclose(edges, [0.19823531, 0.99119944], atol=1e-8)
    expected = {"act": "elu", "blocks": 4, "branches": 1, "lr": pytest.approx(10**-1.5)}
    assert space.decode(vec) == expected


def test_order_is_depth_then_python_name_order() -> None:
    space = _space(
        {"name": "lr", "type": "int", "low": 0, "high": 9, "active_if": {"c": ["a"]}},
        {"name": "j", "type": "float", "low": 0, "high": 1},
        {"name": "c", "type": "categorical", "choices": ["a", "b"]},
        {"name": "Z", "type": "float", "low": 0, "high": 1},
        {"name": "deep", "type": "float", "low": 0, "high": 1, "active_if": {"lr": [5]}},
    )
    assert space.names == ["Z", "c", "j", "lr", "deep"]


def test_inactive_parameters_are_nan_and_dropped() -> None:
    space = SearchSpace.model_validate(EXAMPLE)
    vec = space.encode({"lr": 0.01, "depth": 3, "act": "tanh"})
    assert math.isnan(vec[space.names.index("momentum")])
    full = vec.copy()
    full[space.names.index("momentum")] = 0.4  # an imputed value for an inactive parameter
    assert "momentum" not in space.decode(full)
    assert space.decode(np.where(np.isnan(vec), 0.3, vec))["act"] == "tanh"


def test_validate_config_errors_name_the_parameter() -> None:
    space = SearchSpace.model_validate(EXAMPLE)
    ok = {"lr": 0.1, "depth": 2, "act": "relu", "momentum": 0.9}
    assert space.validate_config(ok) == ok
    cases = [
        ({**ok, "depth": 9}, "'depth': 9 is outside"),
        ({**ok, "depth": 2.5}, "'depth': 2.5 is not an integer"),
        ({**ok, "act": "gelu"}, "'act': 'gelu' is not one of the choices"),
        ({k: v for k, v in ok.items() if k != "momentum"}, "'momentum': missing"),
        ({**ok, "act": "tanh"}, "'momentum': given but inactive"),
        ({**ok, "extra": 1}, "'extra': not in the search space"),
        ({**ok, "lr": "big"}, "'lr': 'big' is not a number"),
    ]
    for config, fragment in cases:
        with pytest.raises(InvalidConfigError, match=fragment):
            space.validate_config(config)


def test_zela2018_builtin() -> None:
    space = SearchSpace.builtin("zela2018")
    assert space.dim == 17
    assert space.names[:3] == ["alpha", "batch_size", "death_rate"]
    assert space.names[-3:] == ["widen_factor_1", "widen_factor_2", "widen_factor_3"]
    with pytest.raises(ValueError, match="zela2018"):
        SearchSpace.builtin("nope")


@st.composite
def spaces(draw: st.DrawFn) -> SearchSpace:
    n = draw(st.integers(1, 6))
    params: list[dict[str, Any]] = []
    for i in range(n):
        kind = draw(st.sampled_from(["float", "int", "categorical"]))
        p: dict[str, Any] = {"name": f"p{i}", "type": kind}
        if kind == "categorical":
            p["choices"] = draw(st.lists(st.sampled_from(["a", 1, 2.5, True, "b"]), min_size=1,
                                         max_size=4, unique_by=lambda v: (type(v), v)))  # fmt: skip
        else:
            low = draw(st.integers(1, 5))
            p |= {"low": low, "high": low + draw(st.integers(1, 50)), "log": draw(st.booleans())}
        parents = [q for q in params if q["type"] == "categorical"]
        if len(parents) > 0 and draw(st.booleans()):
            parent = draw(st.sampled_from(parents))
            p["active_if"] = {parent["name"]: [parent["choices"][0]]}
        params.append(p)
    return SearchSpace.model_validate({"parameters": params})


@settings(max_examples=60, deadline=None)
@given(space=spaces(), seed=st.integers(0, 2**32 - 1))
def test_samples_are_valid_and_round_trip(space: SearchSpace, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(5):
        config = space.sample(rng)
        assert space.validate_config(config) == config
        again = space.decode(space.encode(config))
        assert again == {
            k: pytest.approx(v, rel=1e-12) if isinstance(v, float) else v for k, v in config.items()
        }
        assert [type(v) for v in again.values()] == [type(v) for v in config.values()]
        vec = space.encode(config)
        finite = vec[~np.isnan(vec)]
        assert np.all((finite >= 0) & (finite <= np.maximum(space.n_choices.max(), 1)))
