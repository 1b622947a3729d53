"""The sweep spec: one YAML file that says what to search, how long, where trials run and store.

``load_sweep(path)`` parses and validates it; every problem becomes a ``SpecError`` line with the
field path (``budget.min: must be > 0``) so ``kubohb validate`` can print them all at once.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from controller.backends.base import Resources
from controller.backends.k8s.options import KubernetesOptions
from controller.backends.local.options import LocalOptions
from controller.backends.simulated.options import SimulatedOptions
from controller.bohb.hyperband import Schedule
from controller.bohb.model import ModelName
from controller.sweep import sweepfile
from trainer.contract import BudgetUnit, Dataset, DataSource, check_name

DEFAULT_COMMAND = ["python", "-m", "trainer"]
SYNTHETIC_COMMAND = ["python", "-m", "trainer.synthetic"]
# Field names that look like inline secrets anywhere under `store`: credentials go by reference.
_SECRET_KEYS = {
    "access_key",
    "access_key_id",
    "secret_key",
    "secret_access_key",
    "aws_access_key_id",
    "aws_secret_access_key",
    "session_token",
    "aws_session_token",
    "password",
    "token",
}


class SpecError(ValueError):
    """The sweep file is invalid; ``errors`` holds one ``path: message`` line per problem."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: " + "; ".join(errors))

    def report(self) -> str:
        """What the CLI prints: a count, then one indented line per error."""
        return "\n".join(
            [f"{self.source}: {len(self.errors)} error(s)"] + [f"  {e}" for e in self.errors]
        )


# Bounds that keep every number of a spec usable: the loop adds these times to datetimes (1e308 s
# overflowed, far from the file), and no trial's clock needs more than a year; more budgets than
# this is a schedule no sweep finishes, and slow to build.
MAX_SECONDS = 366 * 86400.0
MAX_POLL_S = 3600.0
MAX_EPOCHS = 100_000.0
MAX_BUDGETS = 32


class _Spec(BaseModel):
    # inf and nan are refused in every float field: they validate against gt/ge and then overflow
    # a clock or a schedule far from the file
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SpaceRef(_Spec):
    """The search space: ``builtin: zela2018`` or an inline ``parameters`` list (see space.py),
    and ``fixed`` values every trial's config gets but BOHB never searches (a constant written as
    a one-choice categorical would still be a dimension of its density model)."""

    builtin: str | None = None
    parameters: list[dict[str, Any]] | None = None
    fixed: dict[str, str | bool | int | float] = {}

    @model_validator(mode="after")
    def _one_of(self) -> SpaceRef:
        if (self.builtin is None) == (self.parameters is None):
            raise ValueError("give exactly one of `builtin` (e.g. zela2018) or `parameters`")
        return self

    def build(self) -> Any:
        from controller.bohb.space import SearchSpace

        if self.builtin is not None:
            return SearchSpace.builtin(self.builtin)
        return SearchSpace.model_validate({"parameters": self.parameters})


class BudgetSpec(_Spec):
    unit: BudgetUnit = "epochs"
    min: float = Field(gt=0)
    max: float = Field(gt=0)
    eta: float = Field(3.0, gt=1)

    @model_validator(mode="after")
    def _ordered(self) -> BudgetSpec:
        if self.max < self.min:
            raise ValueError(f"max ({self.max:g}) must be >= min ({self.min:g})")
        top = MAX_SECONDS if self.unit == "seconds" else MAX_EPOCHS
        if self.max > top:
            raise ValueError(f"max ({self.max:g}) must be <= {top:g} {self.unit}")
        if not math.isfinite(self.max / self.min):
            raise ValueError(f"max / min ({self.max:g} / {self.min:g}) is not a finite number")
        if self.min < self.max and self.eta > self.max / self.min:
            raise ValueError(
                f"eta ({self.eta:g}) is larger than max / min ({self.max / self.min:g}): only max "
                "would ever run; lower eta, or set min = max for a single budget"
            )
        budgets = Schedule(self.min, self.max, self.eta).max_sh_iter  # counted, nothing built
        if budgets > MAX_BUDGETS:
            raise ValueError(
                f"min {self.min:.10g}, max {self.max:.10g} and eta {self.eta:.10g} give "
                f"{budgets:,} budgets (at most {MAX_BUDGETS}): raise min or eta"
            )
        return self


class BohbKnobs(_Spec):
    """BOHB's own knobs (HpBandSter names); unset = the optimiser's default."""

    seed: int = Field(0, ge=0)
    min_points_in_model: int | None = Field(None, ge=1)
    top_n_percent: int | None = Field(None, gt=0, lt=100)
    num_samples: int | None = Field(None, ge=1)
    random_fraction: float | None = Field(None, ge=0, le=1)
    bandwidth_factor: float | None = Field(None, gt=0)
    min_bandwidth: float | None = Field(None, gt=0)
    # sync: HpBandSter's successive halving (a stage waits for all its results); async: a config
    # is promoted as soon as it ranks in the top 1/eta of its stage's results (ASHA, docs/bohb.md)
    promotion: Literal["sync", "async"] | None = None
    # the knobs' defaults: "kubohb" (measured better, docs/bohb.md) or "faithful" (HpBandSter's);
    # a knob set above wins over either
    model: ModelName = "kubohb"
    faithful_kde: bool | None = None  # HpBandSter's exact KDE quirks (slower); see docs/bohb.md
    # score a candidate on its active dimensions only (conditional spaces; docs/bohb.md)
    marginal: bool | None = None
    # one model over every budget's results, each config at its largest budget (docs/bohb.md)
    all_budgets: bool | None = None
    # KDE fitted on at most this many results per budget (docs/bohb.md deviation 15); unset = 1024
    max_model_points: int | None = Field(None, ge=1)
    # A promoted config continues its training from the rung below's checkpoint and trains only
    # the increment (docs/bohb.md, "Promotions that continue"); false: from scratch (the paper's)
    promotion_resume: bool = False
    # earlier sweeps' folder URLs (<store root>/<sweep>) whose results seed the models when this
    # sweep is created (same space required; controller/sweep/warmstart.py)
    warm_start: list[Annotated[str, Field(min_length=1)]] = []

    @field_validator("warm_start")
    @classmethod
    def _once_each(cls, v: list[str]) -> list[str]:
        seen = [u.rstrip("/") for u in v]
        twice = sorted({u for u in seen if seen.count(u) > 1})
        if twice:
            raise ValueError(f"{twice[0]} is listed twice: its results would count double")
        return v

    def knobs(self) -> dict[str, Any]:
        """What the optimiser takes (promotion_resume is the sweep loop's and the trainer's,
        warm_start is read when the sweep is created)."""
        return self.model_dump(
            exclude={"seed", "promotion_resume", "warm_start"}, exclude_none=True
        )


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: float | str) -> float:
    """Seconds from ``5400``, ``"90m"``, ``"2h"`` or ``"1d"``."""
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration: use seconds or a number with s, m, h or d")
    return float(match[1]) * _UNIT_S[match[2]]


class GoalSpec(_Spec):
    """The objective a pipeline gates on: met once a trial on the largest budget reports a loss
    below ``loss_below`` (lower budgets are too noisy to count). The sweep then stops (exit 0);
    a sweep that ends without meeting it exits 4."""

    loss_below: float = Field(gt=0, le=1)


class StopSpec(_Spec):
    """When the sweep ends besides BOHB running out of work. Unset = no limit."""

    max_iterations: int | None = Field(None, ge=1)  # successive-halving brackets
    max_trials: int | None = Field(None, ge=1)
    max_gpu_hours: float | None = Field(None, gt=0)
    max_cost: float | None = Field(None, gt=0)
    gpu_hour_price: float = Field(0.0, ge=0)  # money per device-hour, for max_cost and reports
    # Wall-clock limit from the sweep's first start: seconds, "12h", or an ISO time.
    deadline: float | str | datetime | None = None
    goal: GoalSpec | None = None
    # Near a max_gpu_hours / max_cost cap, open no bracket the cap cannot pay for and finish the
    # open ones (promotions only), so the sweep ends with a max-budget incumbent (docs/bohb.md).
    wind_down: bool = True

    @field_validator("deadline")
    @classmethod
    def _deadline(cls, v: float | str | datetime | None) -> float | str | datetime | None:
        if v is None or isinstance(v, datetime):
            return v
        if isinstance(v, str) and not _DURATION.match(v):
            try:
                return datetime.fromisoformat(v.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(
                    f"{v!r} is neither a duration (90m, 12h, 3600) nor an ISO time"
                ) from None
        if parse_duration(v) <= 0:
            raise ValueError("must be > 0")
        return v

    def deadline_at(self, started_at: datetime) -> datetime | None:
        if self.deadline is None:
            return None
        if isinstance(self.deadline, datetime):
            return self.deadline if self.deadline.tzinfo else self.deadline.replace(tzinfo=UTC)
        return datetime.fromtimestamp(started_at.timestamp() + parse_duration(self.deadline), UTC)


class TrainerSpec(_Spec):
    image: str | None = None  # the Kubernetes backend's trial image
    command: list[str] = Field(default_factory=lambda: list(DEFAULT_COMMAND), min_length=1)
    dataset: Dataset = "fashion_mnist"
    data: DataSource = DataSource()
    resources: Resources = Resources()
    seed: int = Field(0, ge=0)  # training seed of every trial
    # The TrialSpec knobs the trainer takes, copied into every trial.json.
    max_params: int | None = Field(None, gt=0)
    checkpoint_every_s: float = Field(300.0, gt=0, le=MAX_SECONDS)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True
    compile: bool = False
    num_workers: int = Field(2, ge=0)
    env: dict[str, str] = {}  # extra environment for trials (never secrets: use credentials)


class TrialPolicy(_Spec):
    """Retries and deadlines of single trials. Every clock here counts from when an attempt *runs*
    (its container or process started), never from when it was launched or queued."""

    max_attempts: int = Field(3, ge=1)  # launches of one trial when it gets LOST
    # Deadline = budget in seconds x timeout_factor + startup_allowance_s of running time. For an
    # epoch budget one epoch counts as seconds_per_epoch (a generous worst case); timeout_s
    # overrides it all. Past it the attempt is cancelled and the trial FAILED.
    timeout_factor: float = Field(2.0, ge=1, le=100)
    startup_allowance_s: float = Field(120.0, ge=0, le=MAX_SECONDS)
    seconds_per_epoch: float = Field(600.0, gt=0, le=MAX_SECONDS)
    timeout_s: float | None = Field(None, gt=0, le=MAX_SECONDS)
    # The most an attempt may wait queued, suspended (Kueue) or pending (scheduling, node scale-up,
    # image pull) before it runs. Past it the attempt is cancelled and the trial LOST (relaunched
    # up to max_attempts, at the back of any queue). None: wait as long as it takes.
    queue_timeout_s: float | None = Field(86400.0, gt=0, le=MAX_SECONDS)
    # Checkpoints of finished trials kept per budget: the best `keep_checkpoints` succeeded
    # ones (the incumbent's among them); the others, and every failed trial's, are deleted.
    # None: keep every checkpoint.
    keep_checkpoints: int | None = Field(3, ge=1)


class PriceClass(_Spec):
    """One kind of device the sweep pays for: what an hour of it costs, whether it is spot
    capacity, how long an epoch takes on it, and the rungs (budget indices) that run on it."""

    price: float = Field(ge=0, le=1e6)  # money per device-hour
    spot: bool = False
    # epoch time on this class, for deadlines, reservations and estimates of an epochs budget;
    # None = trials.seconds_per_epoch
    seconds_per_epoch: float | None = Field(None, gt=0, le=MAX_SECONDS)
    rungs: list[int] = Field(min_length=1)


class CostSpec(_Spec):
    """Prices per device class, bound to rungs (docs/sweep-spec.md, "Prices per device class").
    A rung no class names costs `stop.gpu_hour_price` and its epochs take
    `trials.seconds_per_epoch`."""

    classes: dict[str, PriceClass] = {}

    @field_validator("classes")
    @classmethod
    def _rungs_once(cls, v: dict[str, PriceClass]) -> dict[str, PriceClass]:
        seen: dict[int, str] = {}
        for name, c in v.items():
            for rung in c.rungs:
                if rung < 0:
                    raise ValueError(f"{name}.rungs: {rung} is not a rung index (0, 1, ...)")
                if rung in seen:
                    raise ValueError(f"rung {rung} is in both {seen[rung]} and {name}")
                seen[rung] = name
        return v


DEFAULT_CLASS = "default"  # the class of rungs that no price class names


class CredentialsRef(_Spec):
    """Store credentials by reference only: the controller's environment or a Kubernetes Secret."""

    env: bool = False  # AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from the environment
    secret: str | None = None  # a Secret with those keys, for trial pods

    @field_validator("secret")
    @classmethod
    def _secret_name(cls, v: str | None) -> str | None:
        if v is not None:
            check_name(v, "credentials.secret")
        return v


class StoreSpec(_Spec):
    url: str = "file://./runs"  # file:///dir, a path, or s3://bucket/prefix
    endpoint_url: str | None = None
    region: str | None = None
    credentials: CredentialsRef = CredentialsRef(env=True)
    # How long the controller and every trainer wait out an unreachable or failing S3 endpoint
    # (5xx, throttling, timeouts, refused connections) before giving up: minutes, so a restarting
    # MinIO or a regional blip does not end a sweep (trainer/store/s3.py).
    outage_tolerance_s: float = Field(600.0, ge=0, le=MAX_SECONDS)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for path, key in _walk_keys(data):
                if key.lower() in _SECRET_KEYS:
                    raise ValueError(
                        f"{path}: inline credentials are not allowed; use "
                        "`credentials: {env: true}` (AWS_* variables) or `{secret: NAME}`"
                    )
        return data

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        scheme = v.split("://", 1)[0] if "://" in v else ""
        if scheme not in ("", "file", "s3"):
            raise ValueError(f"{v!r}: use file:///dir, a path, or s3://bucket/prefix")
        if scheme == "s3" and not v.removeprefix("s3://").split("/", 1)[0]:
            raise ValueError(f"{v!r} names no bucket: use s3://bucket/prefix")
        if scheme == "file" and not v.removeprefix("file://"):
            raise ValueError(f"{v!r} names no folder: use file:///dir or a path")
        return v

    def root_url(self) -> str:
        """The URL as trainers see it: relative file paths made absolute."""
        if self.url.startswith("s3://"):
            return self.url.rstrip("/")
        path = self.url.removeprefix("file://")
        return Path(path).resolve().as_uri()


def _walk_keys(data: Any, path: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            here = f"{path}.{key}" if path else str(key)
            out.append((here, str(key)))
            out.extend(_walk_keys(value, here))
    return out


class BackendSpec(_Spec):
    # simulated: the same sweep in virtual time (no trainer runs; docs/design.md, "Simulator")
    type: Literal["local", "kubernetes", "simulated"] = "local"
    local: LocalOptions = LocalOptions()
    kubernetes: KubernetesOptions = KubernetesOptions()
    simulated: SimulatedOptions = SimulatedOptions()


class SweepSpec(_Spec):
    name: str
    space: SpaceRef
    budget: BudgetSpec
    bohb: BohbKnobs = BohbKnobs()
    stop: StopSpec = StopSpec()
    parallelism: int = Field(1, ge=1)
    poll_interval_s: float = Field(2.0, gt=0, le=MAX_POLL_S)
    trainer: TrainerSpec = TrainerSpec()
    trials: TrialPolicy = TrialPolicy()
    store: StoreSpec = StoreSpec()
    backend: BackendSpec = BackendSpec()
    cost: CostSpec = CostSpec()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v, "name")

    @model_validator(mode="after")
    def _priced(self) -> SweepSpec:
        n = len(self.budgets())
        for name, c in self.cost.classes.items():
            bad = [r for r in c.rungs if r >= n]
            if bad:
                raise ValueError(
                    f"cost.classes.{name}.rungs: {bad} out of range: the budget has {n} rungs "
                    f"(0..{n - 1})"
                )
        if self.stop.max_cost is not None and not any(p > 0 for p in self.rung_prices()):
            raise ValueError(
                "stop.max_cost needs a price: stop.gpu_hour_price > 0 (the price of one "
                "device-hour) or cost.classes with prices"
            )
        return self

    def budgets(self) -> list[float]:
        return Schedule(self.budget.min, self.budget.max, self.budget.eta).budgets

    def rung_of(self, budget: float) -> int:
        """The rung index of one of the schedule's budgets (the nearest: they are floats)."""
        budgets = self.budgets()
        return min(range(len(budgets)), key=lambda i: abs(budgets[i] - budget))

    def price_class(self, rung: int) -> tuple[str, float, float]:
        """(class name, money per device-hour, seconds per epoch) of a rung."""
        for name, c in self.cost.classes.items():
            if rung in c.rungs:
                return name, c.price, c.seconds_per_epoch or self.trials.seconds_per_epoch
        return DEFAULT_CLASS, self.stop.gpu_hour_price, self.trials.seconds_per_epoch

    def rung_prices(self) -> list[float]:
        """Money per device-hour of each rung, in rung order."""
        return [self.price_class(r)[1] for r in range(len(self.budgets()))]

    def continued_from(self, rung: int, first_rung: int) -> float:
        """The budget a trial at ``rung`` of a bracket that starts at ``first_rung`` continues
        from (``bohb.promotion_resume``: the rung below's), or 0.0: it trains from scratch."""
        if not self.bohb.promotion_resume or rung <= first_rung:
            return 0.0
        return self.budgets()[rung - 1]

    def train_seconds(self, budget: float, from_budget: float = 0.0) -> float:
        """Nominal training seconds of one trial at ``budget``, on its rung's device class; of the
        increment above ``from_budget`` for a promotion that continues one."""
        if self.budget.unit == "seconds":
            return budget - from_budget
        return (budget - from_budget) * self.price_class(self.rung_of(budget))[2]

    def deadline_s(self, budget: float) -> float:
        """Worst-case running seconds of one trial attempt, enforced by the backend and the loop."""
        policy = self.trials
        if policy.timeout_s is not None:
            return policy.timeout_s
        seconds = self.train_seconds(budget)
        return math.ceil(seconds * policy.timeout_factor + policy.startup_allowance_s)

    def reserve_s(self, budget: float, from_budget: float = 0.0) -> float:
        """Expected running seconds of one attempt — the budget (one epoch counting
        seconds_per_epoch; a continued promotion's increment above ``from_budget``) plus the
        startup allowance, at most the deadline: what a cost cap reserves for it at launch
        (``cost.py``). The deadline stays the whole budget's: a trainer that finds no checkpoint
        to continue trains from scratch."""
        seconds = self.train_seconds(budget, from_budget)
        return min(seconds + self.trials.startup_allowance_s, self.deadline_s(budget))


def check_feasible(spec: SweepSpec) -> list[str]:
    """Limits that no trial can meet: a sweep that would stop before its first trial."""
    errors = []
    stop = spec.stop
    if not any(
        (stop.max_iterations, stop.max_trials, stop.max_gpu_hours, stop.max_cost, stop.deadline)
    ):
        errors.append(
            "stop: set at least one of max_iterations, max_trials, max_gpu_hours, max_cost or "
            "deadline (BOHB alone never ends)"
        )
    from controller.sweep.cost import Caps, Spend, money, worst_case

    smallest = worst_case(spec.reserve_s(spec.budget.min), spec.trainer.resources.gpus)
    one = Spend(smallest, money(smallest, spec.price_class(0)[1]))
    caps = Caps(stop.max_gpu_hours, stop.max_cost)
    over = caps.over(one)
    if over is not None:
        room = caps.left(Spend())
        allows = (
            f"{room.device_s / 3600:.4g} device-hours"
            if over == "max_gpu_hours"
            else f"{room.money:.4g} at {one.money / max(smallest, 1e-9) * 3600:.4g} a device-hour"
        )
        errors.append(
            f"stop.{over}: even one trial at the smallest budget may use "
            f"{smallest / 3600:.4g} device-hours (its budget and startup allowance x devices), "
            f"more than the cap allows ({allows}); raise the cap or lower the budget "
            "or trials.startup_allowance_s"
        )
    return errors


def _check_space(spec: SweepSpec) -> list[str]:
    try:
        space = spec.space.build()
    except ImportError:
        return []  # the BOHB core is not installed; `run` reports it
    except ValidationError as exc:  # field paths below `space`, never pydantic's raw text
        return format_errors(exc, "space")
    except (ValueError, KeyError) as exc:
        return [f"space: {_one_line(exc)}"]
    searched = set(space.names)
    return [
        f"space.fixed.{name}: also a searched parameter; fix it or search it, not both"
        for name in sorted(spec.space.fixed)
        if name in searched
    ]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


# pydantic's bound errors: (operator, its ctx key), for "must be > 0" style messages
_BOUNDS = {
    "greater_than": (">", "gt"),
    "greater_than_equal": (">=", "ge"),
    "less_than": ("<", "lt"),
    "less_than_equal": ("<=", "le"),
}


def format_errors(exc: ValidationError, prefix: str = "") -> list[str]:
    """One ``field.path: message`` line per error; ``prefix``: the path of what was validated."""
    lines = []
    for err in exc.errors():
        parts = [prefix] if prefix else []
        parts += [str(p) for p in err["loc"] if not str(p).startswith("function-")]
        loc = ".".join(parts)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] in _BOUNDS:
            op, key = _BOUNDS[err["type"]]
            msg = f"must be {op} {(err.get('ctx') or {}).get(key):g}"
        nested = re.match(r"^([\w.]+): (inline credentials.*)$", msg)
        if nested and loc:  # a validator that names the offending field below its own
            loc, msg = f"{loc}.{nested[1]}", nested[2]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see docs/sweep-spec.md)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"{loc}: {msg}" if loc else msg)
    return lines


def parse_sweep(text: str, source: str = "<sweep>") -> SweepSpec:
    """Validate YAML text; raises SpecError listing every problem."""
    try:
        data = sweepfile.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(source, [f"{where}malformed YAML ({problem})"]) from None
    if not isinstance(data, dict):
        raise SpecError(source, ["the file must be a YAML mapping (name:, space:, budget: ...)"])
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(source, format_errors(exc)) from None
    errors = _check_space(spec) + check_feasible(spec)
    if errors:
        raise SpecError(source, errors)
    return spec


def read_sweep(path: str | Path) -> tuple[SweepSpec, str]:
    """The validated spec and the exact text it came from (the file is read once)."""
    try:
        text = sweepfile.read_text(path)
    except sweepfile.SweepFileError as exc:
        raise SpecError(str(path), [str(exc)]) from None
    return parse_sweep(text, str(path)), text


def load_sweep(path: str | Path) -> SweepSpec:
    return read_sweep(path)[0]
