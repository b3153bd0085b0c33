"""Start-up of the command line: ``import tribes.cli``, ``tribes --help`` and
``tribes status --help``, each in a fresh process.

Prints the median wall time of several runs, the peak RSS, and how many modules the
process imported (all of ``sys.modules`` at exit, and the ``tribes.*`` ones). Give
``--src`` more than once to compare checkouts side by side (a column each):

    python benchmarks/bench_startup.py                       # this checkout's src
    python benchmarks/bench_startup.py --src ../other/src --src src --runs 11
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _measure import Run, measure_isolated

CASES: dict[str, list[str]] = {
    "import tribes.cli": ["-c", "import tribes.cli"],
    "tribes --help": ["-m", "tribes", "--help"],
    "tribes status --help": ["-m", "tribes", "status", "--help"],
}

# runs the case's own arguments, then reports sys.modules on stderr as it exits
_COUNT = """
import atexit, json, runpy, sys
def _report():
    names = list(sys.modules)
    sys.stderr.write("\\n" + json.dumps({"modules": len(names), "tribes": sum(
        1 for m in names if m == "tribes" or m.startswith("tribes."))}) + "\\n")
atexit.register(_report)
args = sys.argv[1:]
if args[0] == "-c":
    exec(args[1])
else:
    sys.argv = ["tribes", *args[2:]]
    runpy.run_module(args[1], run_name="__main__", alter_sys=True)
"""


def module_counts(args: list[str]) -> dict[str, int]:
    proc = subprocess.run([sys.executable, "-c", _COUNT, *args], capture_output=True,
                          text=True, check=False)
    last = proc.stderr.strip().splitlines()[-1]
    return dict(json.loads(last))


def measure(srcs: list[Path], runs: int) -> list[dict[str, dict[str, float]]]:
    """Per src folder, per case: the median time and peak RSS, and the module counts. The
    runs alternate between the folders, so a busy machine slows them alike."""
    out: list[dict[str, dict[str, float]]] = [{} for _ in srcs]
    for name, args in CASES.items():
        cmd = [sys.executable, *args]
        timed: list[list[Run]] = [[] for _ in srcs]
        for i in range(runs + 1):
            for j, src in enumerate(srcs):
                os.environ["PYTHONPATH"] = str(src)
                run = measure_isolated(cmd)
                if i:  # the first is a warm-up: bytecode caches and the file cache
                    timed[j].append(run)
        for j, src in enumerate(srcs):
            os.environ["PYTHONPATH"] = str(src)
            out[j][name] = {"seconds": statistics.median(r.seconds for r in timed[j]),
                            "rss_mib": statistics.median(r.peak_rss_mib for r in timed[j]),
                            **module_counts(args)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, action="append",
                        help="a src folder holding the tribes package (repeatable; "
                             "default: this checkout's)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per case")
    opts = parser.parse_args()
    srcs = opts.src or [Path(__file__).resolve().parents[1] / "src"]
    results = measure([s.resolve() for s in srcs], opts.runs)

    print(f"median of {opts.runs} runs after one warm-up; modules: in sys.modules at "
          "exit (tribes.* ones in brackets)")
    for i, s in enumerate(srcs, 1):
        print(f"  [{i}] {s}")
    head = f"{'':<22}" + "".join(f"{f'[{i}]':>28}" for i in range(1, len(srcs) + 1))
    print(head)
    for name in CASES:
        cells = []
        for r in results:
            c = r[name]
            cells.append(f"{c['seconds']:6.3f} s {c['rss_mib']:4.0f} MiB "
                         f"{c['modules']:5d} ({c['tribes']:3d})")
        print(f"{name:<22}" + "".join(f"{c:>28}" for c in cells))


if __name__ == "__main__":
    main()
