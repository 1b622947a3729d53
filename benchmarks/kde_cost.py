"""What one KDE evaluation of a model-based proposal costs: ``kde.pdf`` of the 64 candidates
against a KDE of n points (17-D continuous, as zela2018's encoding), for the n a bound of
``max_model_points`` keeps per KDE (B / 2), with BLAS limited to one thread (what ``kubohb run``
sets, ``controller.sweep.runner.one_blas_thread``) and with the library's default thread count.

``python -m benchmarks kde_cost`` (= ``.venv/bin/python -m benchmarks.kde_cost [--repeats R]``):
median wall time per call over R calls (default 300) after 20 warm-up calls; the
matrix product alone is printed too, since it is the part that BLAS threads change. Figures in
docs/benchmarks.md ("BOHB at scale").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from controller.bohb import kde

DIM, CANDIDATES, WARMUP = 17, 64, 20


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(WARMUP):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kde_cost", description=__doc__)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--points", type=int, nargs="*", default=[512, 1024, 2048])
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    query = rng.random((CANDIDATES, DIM))
    threads = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
    print(f"kde.pdf of {CANDIDATES} candidates, {DIM}-D, median ms per call ({args.repeats} calls)")
    print(f"{'points':>7} {'pdf, 1 thread':>14} {'pdf, ' + str(threads) + ' threads':>15}"
          f" {'product, 1':>11} {'product, ' + str(threads):>11}")  # fmt: skip
    for n in args.points:
        model = kde.fit(rng.random((n, DIM)), np.zeros(DIM, dtype=np.int64))
        scaled = model._scaled
        cells = []
        for what in (lambda m=model: m.pdf(query), lambda s=scaled: query @ s.T):
            for limit in (1, None):
                with threadpool_limits(limit, user_api="blas"):
                    cells.append(_median_ms(what, args.repeats))
        pdf1, pdfn, prod1, prodn = cells
        print(f"{n:>7} {pdf1:>14.3f} {pdfn:>15.3f} {prod1:>11.3f} {prodn:>11.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
