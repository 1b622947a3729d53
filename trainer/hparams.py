"""One point of the Zela et al. 2018 joint space, as the trainer reads it (torch-free).

Parameter names are exactly those of the search space (BOHB_SPEC §5.1). Every parameter has a
default, so small test spaces that fix or omit some of them work: the defaults are the authors'
``opts.py`` defaults (Shake-Shake 26 2x32d: 4 blocks per stage, 2 branches, 16 initial filters,
widths 32/64/128). Values are checked loosely (what can be built and trained), not against the
space's ranges, so that narrower or wider test spaces are accepted.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

STAGES = 3


class TrainConfig(BaseModel):
    """Architecture (A1–A10) and training hyperparameters (H1–H7) of one trial."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nr_residual_blocks_1: Annotated[int, Field(ge=1, le=64)] = 4
    nr_residual_blocks_2: Annotated[int, Field(ge=1, le=64)] = 4
    nr_residual_blocks_3: Annotated[int, Field(ge=1, le=64)] = 4
    initial_filters: Annotated[int, Field(ge=1, le=1024)] = 16
    widen_factor_1: Annotated[float, Field(gt=0, le=64)] = 2.0
    widen_factor_2: Annotated[float, Field(gt=0, le=64)] = 2.0
    widen_factor_3: Annotated[float, Field(gt=0, le=64)] = 2.0
    res_branches_1: Annotated[int, Field(ge=1, le=16)] = 2
    res_branches_2: Annotated[int, Field(ge=1, le=16)] = 2
    res_branches_3: Annotated[int, Field(ge=1, le=16)] = 2
    learning_rate: Annotated[float, Field(gt=0)] = 0.1
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 32
    weight_decay: Annotated[float, Field(ge=0)] = 1e-4
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    alpha: Annotated[float, Field(ge=0)] = 0.2  # mixup Beta(alpha, alpha); 0 = off
    length: Annotated[int, Field(ge=0)] = 16  # cutout side in pixels; 0 = off
    death_rate: Annotated[float, Field(ge=0, le=1)] = 0.5  # ShakeDrop, single-branch blocks only

    def blocks(self) -> list[int]:
        return [self.nr_residual_blocks_1, self.nr_residual_blocks_2, self.nr_residual_blocks_3]

    def branches(self) -> list[int]:
        return [self.res_branches_1, self.res_branches_2, self.res_branches_3]

    def widths(self) -> list[int]:
        """Stage widths: round(initial × wf1), then round(previous × wf_i) (multiplicative)."""
        out, width = [], self.initial_filters
        for factor in (self.widen_factor_1, self.widen_factor_2, self.widen_factor_3):
            width = round(width * factor)
            out.append(width)
        return out


def parse_config(raw: dict[str, Any]) -> TrainConfig:
    """Validate a trial's config; the ValidationError names the offending parameter.

    Integer parameters may arrive as floats from a JSON round trip (``4.0``): accept them when
    they are whole numbers, as the search space's integer parameters always are.
    """
    fixed: dict[str, Any] = {}
    for name, value in raw.items():
        field = TrainConfig.model_fields.get(name)
        if (
            field is not None
            and field.annotation is not None
            and "int" in str(field.annotation)
            and isinstance(value, float)
            and value.is_integer()
        ):
            value = int(value)
        fixed[name] = value
    return TrainConfig.model_validate(fixed)


__all__ = ["STAGES", "TrainConfig", "ValidationError", "parse_config"]
