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


def measure_tree(cmd: list[str], env: dict[str, str] | None = None,
                 interval: float = 0.2) -> Run:
    """Like :func:`measure_isolated`, with the peak of the summed RSS of the child and all
    its descendants, sampled every ``interval`` seconds (Spark runs in a JVM that the
    Python process starts; ``wait4`` sees only the Python process)."""
    import psutil

    start = time.perf_counter()
    peak = 0
    with tempfile.TemporaryFile("w+") as errfile, tempfile.TemporaryFile("w+") as outfile:
        proc = subprocess.Popen(cmd, stdout=outfile, stderr=errfile, text=True, env=env)
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [ps, *ps.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(interval)
        seconds = time.perf_counter() - start
        outfile.seek(0)
        errfile.seek(0)
        out, err = outfile.read(), errfile.read()
    if proc.returncode != 0:
        sys.stderr.write(err[-5000:])
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    return Run(seconds, peak / 2**20, out)
