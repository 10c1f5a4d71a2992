"""Stage timings on stderr when `$HCODE_PROFILE` is set: how the benchmarks see where the
time goes, at no cost otherwise."""

from __future__ import annotations

import os
import sys
import time

ENABLED = bool(os.environ.get("HCODE_PROFILE"))


class Stages:
    """`s = Stages("evaluate"); ...; s.tick("facts")` prints `  evaluate: facts 1.23s (cpu 2.10s)`
    (the CPU time of every thread of the process: how busy the cores were)."""

    def __init__(self, name: str):
        self.name = name
        self.last = time.perf_counter()
        self.cpu = time.process_time()

    def tick(self, label: str) -> None:
        if ENABLED:
            now, cpu = time.perf_counter(), time.process_time()
            print(f"  {self.name}: {label} {now - self.last:.2f}s (cpu {cpu - self.cpu:.2f}s)", file=sys.stderr,
                  flush=True)
            self.last, self.cpu = now, cpu
