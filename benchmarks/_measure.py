"""Run a command in a child process and report its wall time and its own peak RSS."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass


@dataclass
class Run:
    seconds: float
    peak_rss_mib: float
    stdout: str


def measure_isolated(cmd: list[str]) -> Run:
    """Run ``cmd`` to completion; peak RSS comes from ``wait4`` on that very child."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errfile:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errfile, text=True)
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        errfile.seek(0)
        err = errfile.read()
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if code != 0:
        sys.stderr.write(err)
        raise SystemExit(f"command failed ({code}): {' '.join(cmd)}")
    return Run(seconds, usage.ru_maxrss / 1024, out)
