"""Run a command in a child process and report its wall time, CPU time and peak RSS."""

from __future__ import annotations

import os
import resource
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
    cpu_seconds: float = 0.0  # user + system, the child and its descendants


def _children_cpu() -> float:
    """CPU seconds of the children this process has waited for (grow by each run's)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_isolated(cmd: list[str]) -> Run:
    """Run ``cmd`` to completion; peak RSS comes from ``wait4`` on that very child."""
    cpu = _children_cpu()
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
    return Run(seconds, usage.ru_maxrss / 1024, out, _children_cpu() - cpu)


def measure_tree(cmd: list[str], env: dict[str, str] | None = None,
                 interval: float = 0.2) -> Run:
    """Like :func:`measure_isolated`, with the peak of the summed RSS of the child and all
    its descendants, sampled every ``interval`` seconds (Spark runs in a JVM that the
    Python process starts; ``wait4`` sees only the Python process)."""
    import psutil

    cpu = _children_cpu()
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
    return Run(seconds, peak / 2**20, out, _children_cpu() - cpu)
