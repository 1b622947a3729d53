"""Cost accounting (pure): charges, caps, and the rule that a cap can never be overspent."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.sweep import cost

seconds = st.floats(min_value=0, max_value=1e5, allow_nan=False)
deadlines = st.floats(min_value=1, max_value=1e4, allow_nan=False)
gpus = st.integers(min_value=0, max_value=8)


def test_cpu_trials_count_as_one_device() -> None:
    assert cost.devices(0) == 1 and cost.devices(4) == 4
    assert cost.charge(100, 50, 0) == 50  # clamped to the deadline
    assert cost.charge(-3, 50, 2) == 0
    assert cost.money(7200, 2.5) == 5.0


def test_tightest_cap_binds() -> None:
    caps = cost.Caps(max_gpu_hours=2, max_cost=3, gpu_hour_price=2)  # 1.5 h of money
    assert caps.binding() == "max_cost"
    assert caps.short(cost.Spend(1.5 * 3600, 3.0)) == "max_cost"  # the money runs out first
    assert caps.short(cost.Spend(2 * 3600, 0.0)) == "max_gpu_hours"
    assert caps.short(cost.Spend(1.5 * 3600 - 1, 2.999)) is None
    assert caps.left(cost.Spend(3600, 1.0)) == cost.Spend(3600, 2.0)
    assert cost.Caps(max_gpu_hours=1, max_cost=3, gpu_hour_price=2).binding() == "max_gpu_hours"
    assert cost.Caps().binding() is None and not cost.Caps().any()


def test_attempts_count_for_the_money_cap_at_their_own_price() -> None:
    """Two device classes: an hour on a 4-per-hour class costs what four on a 1-per-hour one
    does; the device-hours cap counts both alike."""
    caps = cost.Caps(max_gpu_hours=10, max_cost=6)  # no default price: every attempt has one
    cheap = cost.Running(3600, 7200, 1, price=1.0)
    dear = cost.Running(3600, 7200, 1, price=4.0)
    assert cost.accounted_spend(caps, 0, [cheap, dear], spent_money=0) == cost.Spend(7200, 5.0)
    assert cost.cap_hit(caps, 0, [cheap, dear], spent_money=0) is None
    assert cost.cap_hit(caps, 0, [cheap, dear], spent_money=1.0) == "max_cost"
    # holding a dear attempt's reservation leaves no room for another hour of it
    held_one = [cost.Running(0, 3600, 1, price=4.0)]
    assert cost.can_launch(caps, 0, held_one, 3600, 1, spent_money=0, price=1.0)
    assert not cost.can_launch(caps, 0, held_one, 3600, 1, spent_money=0, price=4.0)


@given(elapsed=seconds, deadline=deadlines, n=gpus)
def test_charge_is_bounded_by_worst_case(elapsed: float, deadline: float, n: int) -> None:
    c = cost.charge(elapsed, deadline, n)
    assert 0 <= c <= cost.worst_case(deadline, n)


@settings(max_examples=200)
@given(
    cap_h=st.floats(min_value=0.01, max_value=5),
    trials=st.lists(st.tuples(deadlines, gpus, st.floats(0, 1.5)), min_size=1, max_size=60),
    parallel=st.integers(min_value=1, max_value=8),
)
def test_a_simulated_sweep_never_overspends(
    cap_h: float, trials: list[tuple[float, int, float]], parallel: int
) -> None:
    """Launch whatever can_launch allows; trials run a random fraction of (or past) their deadline
    and are charged at most their deadline. The accounted total never exceeds the cap."""
    caps = cost.Caps(max_gpu_hours=cap_h)
    spent = 0.0
    queue = list(trials)
    running: list[tuple[cost.Running, float]] = []  # (attempt, its actual run length)
    clock = 0.0
    while queue or running:
        while queue and len(running) < parallel:
            deadline, n, fraction = queue[0]
            now_running = [
                cost.Running(clock - start, r.deadline_s, r.gpus) for r, start in running
            ]
            if not cost.can_launch(caps, spent, now_running, deadline, n):
                break
            queue.pop(0)
            running.append((cost.Running(fraction * deadline, deadline, n), clock))
        if not running:
            break  # the next trial does not fit even alone: the sweep stops on the cap
        # advance to the next end of a running attempt
        ends = [start + r.elapsed_s for r, start in running]
        clock = min(ends)
        finished = [(r, s) for (r, s), e in zip(running, ends, strict=True) if e <= clock]
        for r, start in finished:
            spent += cost.charge(clock - start, r.deadline_s, r.gpus)
            running.remove((r, start))
        live = [cost.Running(clock - s, r.deadline_s, r.gpus) for r, s in running]
        assert cost.accounted(spent, live) <= cap_h * 3600 + 1e-6
        assert cost.cap_hit(caps, spent, live) in (None, "max_gpu_hours")
    assert spent <= cap_h * 3600 + 1e-6


@given(spent=seconds, deadline=deadlines, n=gpus, cap_h=st.floats(0.01, 50))
def test_can_launch_is_exact_at_the_boundary(
    spent: float, deadline: float, n: int, cap_h: float
) -> None:
    caps = cost.Caps(max_gpu_hours=cap_h)
    fits = spent + cost.worst_case(deadline, n) <= cap_h * 3600
    assert cost.can_launch(caps, spent, [], deadline, n) == fits


def test_cap_hit_when_accounted_reaches_the_limit() -> None:
    caps = cost.Caps(max_cost=1.0, gpu_hour_price=1.0)
    assert cost.cap_hit(caps, 3599, []) is None
    assert cost.cap_hit(caps, 3000, [cost.Running(600, 900, 0)]) == "max_cost"


@settings(max_examples=200)
@given(
    cap_h=st.floats(min_value=0.01, max_value=5),
    trials=st.lists(
        st.tuples(deadlines, gpus, st.floats(0.05, 1.0), st.floats(0, 1.5)), min_size=1, max_size=60
    ),
    parallel=st.integers(min_value=1, max_value=8),
)
def test_reserving_less_than_the_deadline_with_cancel_at_the_cap_never_overspends(
    cap_h: float, trials: list[tuple[float, int, float, float]], parallel: int
) -> None:
    """Attempts reserve a share of their deadline and run any fraction of (or past) it; the loop
    cancels every running attempt the moment the accounted total reaches the cap. What is spent
    never passes the cap (here in continuous time; the loop checks once per poll)."""
    caps = cost.Caps(max_gpu_hours=cap_h)
    limit = cap_h * 3600 * (1 + 1e-9) + 1e-6
    spent, clock = 0.0, 0.0
    queue = list(trials)
    running: list[tuple[cost.Running, float, float]] = []  # (attempt, start, run length)

    def live() -> list[cost.Running]:
        return [cost.Running(clock - s, r.deadline_s, r.gpus, r.reserve_s) for r, s, _ in running]

    while queue or running:
        while queue and len(running) < parallel:
            deadline, n, share, fraction = queue[0]
            if not cost.can_launch(caps, spent, live(), share * deadline, n):
                break
            queue.pop(0)
            running.append(
                (cost.Running(0.0, deadline, n, share * deadline), clock, fraction * deadline)
            )
        if not running:
            break
        # the next event: the first attempt to end, or the moment the total reaches the cap
        # (every running attempt below its deadline accrues its devices per second)
        end = min(s + min(length, r.deadline_s) for r, s, length in running)
        rate = sum(cost.devices(r.gpus) for r, s, _ in running if clock - s < r.deadline_s)
        to_cap = (cap_h * 3600 - cost.accounted(spent, live())) / rate if rate else float("inf")
        if clock + to_cap < end:  # the cap first: cancel everything, charged what it ran
            clock += max(0.0, to_cap)
            spent = cost.accounted(spent, live())
            running.clear()
            break
        clock = end
        for item in [x for x in running if x[1] + min(x[2], x[0].deadline_s) <= clock]:
            r, s, _ = item
            spent += cost.charge(clock - s, r.deadline_s, r.gpus)
            running.remove(item)
        assert spent <= limit
    assert spent <= limit


def test_an_attempt_holds_its_reservation_or_what_it_used() -> None:
    assert cost.held(cost.Running(0, 100, 0, 40)) == 40
    assert cost.held(cost.Running(70, 100, 2, 40)) == 140  # overran its reservation
    assert cost.held(cost.Running(0, 100, 0)) == 100  # no reservation: its deadline
    assert cost.held(cost.Running(0, 100, 0, 500)) == 100  # never more than the deadline
    caps = cost.Caps(max_gpu_hours=1)
    assert cost.can_launch(caps, 3000, [cost.Running(0, 1000, 0, 300)], 300, 0)
    assert not cost.can_launch(caps, 3000, [cost.Running(0, 1000, 0, 301)], 300, 0)
