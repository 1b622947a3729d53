"""`python -m benchmarks [name ...]`: run the named benchmarks (default: all), one after another."""

from __future__ import annotations

import importlib
import sys

ALL = [
    "optimizers",
    "suite",
    "trainer",
    "controller",
    "k8s_backend",
    "report",
    "simulate",
    "promotion_resume",
    "warm_start",
    "bohb_scale",
    "kde_cost",
    "scale",
]


def main(argv: list[str]) -> int:
    names = argv or ALL
    unknown = sorted(set(names) - set(ALL))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ALL)}")
        return 2
    rc = 0
    for name in names:
        print(f"\n=== benchmarks.{name} ===", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        rc |= module.main([]) or 0
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
