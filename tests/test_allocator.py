"""Polars' allocator keeps freed memory for reuse while a batch job runs (`hcode.ALLOCATOR`):
set by importing hcode, before Polars loads, unless the user set `$_RJEM_MALLOC_CONF`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import hcode

# Allocates 48 x 8 MB through Polars, frees it, waits 3 s (six times Polars' own decay,
# a third of hcode's) and prints how much of it the process still holds.
PROBE = """
import time
import hcode, polars as pl
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")) // 1024
base = rss()
held = [pl.int_range(0, 1 << 20, eager=True) * i for i in range(48)]
del held
time.sleep(3)
print(rss() - base)
"""


def _probe(env_value: str | None) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    if env_value is not None:
        env["_RJEM_MALLOC_CONF"] = env_value
    out = subprocess.run([sys.executable, "-c", "import hcode, os; print(os.environ['_RJEM_MALLOC_CONF'])\n" + PROBE],
                         env=env, capture_output=True, text=True, check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the probe reads the process's memory in /proc")
def test_importing_hcode_keeps_freed_memory_for_reuse_and_a_users_setting_wins() -> None:
    conf, held = _probe(None)
    assert conf == hcode.ALLOCATOR
    assert held > 64  # MiB of the 384 freed, still held for the next batch (122-386 seen; 2 with Polars' own)
    conf, held = _probe("dirty_decay_ms:500,muzzy_decay_ms:0")  # (Polars' own decay)
    assert conf == "dirty_decay_ms:500,muzzy_decay_ms:0"
    assert held < 32  # handed back to the system
