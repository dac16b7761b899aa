"""Benchmark: one benchmark script on two versions of the code, back to back, interleaved.

This machine's speed moves by half from hour to hour, so a change is judged against the code
before it measured in the same run, not against figures from another day. Check out the older
version somewhere (``git worktree add /tmp/before <rev>`` or ``git clone``), then:

    .venv/bin/python benchmarks/compare.py --before /tmp/before simulate [-- --sizes 30000]

Each round runs the script once from each tree (alternating which goes first), with that tree
first on ``PYTHONPATH`` and as the working directory, so each version runs its own package and
its own copy of the script; the script's result table (its last lines) is printed per run.
Scripts that read the demo's files (``score_one``, ``explain``, ``api``) take ``--models`` and
``--events``/``--demo``: pass the older tree's own demo output after ``--`` for it with
``--before-args``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(tree: Path, script: str, args: list[str]) -> tuple[float, str]:
    """Run ``benchmarks/<script>.py`` of ``tree`` with its own package; (seconds, output)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(tree / "benchmarks" / f"{script}.py"), *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {script} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - started, done.stdout


def _table(output: str, lines: int) -> str:
    """The last ``lines`` non-empty lines of a script's output (its result table)."""
    return "\n".join([line for line in output.splitlines() if line.strip()][-lines:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("script", help="a benchmark under benchmarks/, e.g. simulate")
    parser.add_argument("--before", type=Path, required=True, help="the older tree")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--lines", type=int, default=8, help="lines of each result to show")
    parser.add_argument("--before-args", default="", help="arguments for the older tree's run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then the script's arguments")
    opts = parser.parse_args()
    args = [a for a in opts.args if a != "--"]
    before_args = opts.before_args.split() or args
    trees = {"after (this tree)": (ROOT, args), "before": (opts.before.resolve(), before_args)}
    order = list(trees)
    for round_ in range(1, opts.rounds + 1):
        for label in order if round_ % 2 else reversed(order):
            tree, tree_args = trees[label]
            seconds, output = _run(tree, opts.script, tree_args)
            print(f"\n## round {round_}, {label}: {tree} ({seconds:.0f} s)")
            print(_table(output, opts.lines))


if __name__ == "__main__":
    main()
