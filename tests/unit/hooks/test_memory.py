"""Keeping freed memory: a large block freed stays in the process for the next request."""

from __future__ import annotations

import subprocess
import sys

from hooks.memory import keep_freed_memory

# Allocate and touch 64 MiB (as a large sync's answer does), free it, report RSS growth (MiB).
PROBE = """
import sys
from hooks.memory import keep_freed_memory
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
applied = keep_freed_memory(int(sys.argv[1]) * 1024 * 1024)
before = rss()
block = bytearray(64 * 1024 * 1024)
del block
print(int(applied), rss() - before)
"""


def probe(keep_mib: int) -> tuple[bool, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(keep_mib)], check=True, capture_output=True, text=True
    ).stdout.split()
    return out[0] == "1", int(out[1])


def test_zero_keeps_nothing() -> None:
    assert keep_freed_memory(0) is False


def test_a_freed_large_block_is_kept_only_when_asked() -> None:
    applied, kept = probe(256)
    assert applied
    assert kept >= 60  # still resident: the next answer reuses it without page faults

    applied, kept = probe(0)
    assert not applied
    assert kept < 8  # glibc's default: unmapped on free
