"""`python -m tests.soak` (`make soak`): the soak with `SOAK_MINUTES` (default 15, at least 1)
of traffic and chaos and seed `SOAK_SEED` (default 1; the same seed plans the same faults).
Prints the report and exits 1 if any check failed, 2 if it cannot run here (no PostgreSQL server
binaries or redis-server, or too few minutes). Logs of every process stay in the folder the
report names (`SOAK_DIR`, else a new temporary folder).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from tests.soak import SoakUnavailable, run_soak


def _terminate(signum: int, frame: object) -> None:
    # Unwind through run_soak's cleanup, as Ctrl-C does, instead of dying with children up.
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    minutes = float(os.environ.get("SOAK_MINUTES") or 15)
    seed = int(os.environ.get("SOAK_SEED") or 1)
    if minutes < 1:
        print("soak: SOAK_MINUTES must be at least 1 (warm-up, then every kind of fault)")
        return 2
    workdir = Path(os.environ["SOAK_DIR"]) if os.environ.get("SOAK_DIR") else None
    if workdir:
        workdir.mkdir(parents=True, exist_ok=True)
    try:
        report = run_soak(minutes, seed, workdir=workdir, out=lambda line: print(line, flush=True))
    except SoakUnavailable as exc:
        print(f"soak: cannot run here: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("soak: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
