"""Run every benchmark of issue 8 in turn, each as its own process.

Run: `python3 -m uv run python bench/run_all.py`. Each prints its table; the
exit status is 1 when any of them missed a goal. Set BENCH_DIRECTUS_SQLITE and
BENCH_DIRECTUS_POSTGRES to `local-directus start` folders to reuse instances.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = (
    ["import_throughput.py", "--n", "300"],
    ["api_economy.py", "--n", "2000"],
    ["webhook_intake.py", "--sizes", "100,1000"],
    ["memory.py", "--sizes", "100,1000"],
    ["archive_import.py", "--n", "300"],
)


def main() -> int:
    here = Path(__file__).parent
    missed = []
    for script, *arguments in BENCHMARKS:
        print(f"\n## {script} {' '.join(arguments)}", flush=True)
        done = subprocess.run([sys.executable, str(here / script), *arguments])
        if done.returncode:
            missed.append(script)
    print(f"\ngoals missed in: {', '.join(missed) or 'none'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
