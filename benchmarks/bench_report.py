"""The health report of sample_data, end to end, each run in a fresh process.

    python benchmarks/bench_report.py [--repeat 3] [--dataset sample_data]

Targets (issue "Dataset health report"):

* without embeddings (``--embeddings skip``) under 10 s;
* with cached embeddings (``--embeddings cached``, after one ``auto`` run has filled the
  store) under 20 s.

Each timing is a fresh ``python -m qa.cli report ... --formats json,html,pdf`` process (import,
load, every analysis, the three files), as a CI job runs it. The baseline, in the same run,
is the analyses alone (``run_analyses`` in a fresh process): the report's own cost is the
difference. Prints the figures and PASS/FAIL; not a timed test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP_TARGET_S = 10.0
CACHED_TARGET_S = 20.0

_BASELINE = """
import sys, time
t = time.perf_counter()
import qa
from qa.analyses import run_analyses
ds = qa.load(sys.argv[1])
run = run_analyses(ds, embeddings=sys.argv[2])
print(time.perf_counter() - t)
"""


def _timed(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t
    if proc.returncode not in (0, 1):  # 1 = the gate closed, still a report
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default=str(ROOT / "sample_data"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="bench-report-")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DATASET_QA_HOME": f"{home}/home",
           "DATASET_QA_CACHE": f"{home}/cache"}
    py = sys.executable
    ok = True
    for mode, target in (("skip", SKIP_TARGET_S), ("cached", CACHED_TARGET_S)):
        if mode == "cached":  # fill the store once (not timed), as `dataset-qa embed` would
            _timed([py, "-m", "qa.cli", "report", args.dataset, "--out", f"{home}/warm",
                    "--embeddings", "auto", "--formats", "json", "--no-history", "--json"],
                   env)
        base = [_timed([py, "-c", _BASELINE, args.dataset, mode], env)
                for _ in range(args.repeat)]
        full = [_timed([py, "-m", "qa.cli", "report", args.dataset, "--out", f"{home}/out",
                        "--embeddings", mode, "--json"], env) for _ in range(args.repeat)]
        med, bmed = statistics.median(full), statistics.median(base)
        passed = med < target
        ok &= passed
        print(f"embeddings={mode:<6} report (json+html+pdf, fresh process): median "
              f"{med:.2f} s (min {min(full):.2f}, max {max(full):.2f}); baseline "
              f"run_analyses alone {bmed:.2f} s; report's own cost {med - bmed:+.2f} s; "
              f"target < {target:.0f} s: {'PASS' if passed else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
