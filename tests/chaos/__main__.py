"""``python -m tests.chaos``: make the chaos runs and print their figures as Markdown.

    python -m tests.chaos                  # the long variant, every run (several minutes)
    python -m tests.chaos --variant short  # what CI runs
    python -m tests.chaos --run kills --run noise --seed 7

The table goes to stdout; the problems found (one line per job or event at fault) to
stderr. The exit status is 1 when an invariant does not hold in some run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from tests.chaos.figures import Figures
from tests.chaos.plan import PLANS, SEED
from tests.chaos.runs import RUNS
from tests.chaos.table import chaos_lines, markdown


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--variant", choices=sorted(PLANS), default="long")
    parser.add_argument("--run", action="append", choices=list(RUNS), help="default: all")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--workdir", type=Path, help="keep logs here (default: a temp dir)")
    return parser.parse_args(argv)


async def make_runs(names: list[str], variant: str, seed: int, workdir: Path) -> list[Figures]:
    rows = []
    for name in names:
        print(f"chaos: {name} ({variant}, seed {seed})...", file=sys.stderr, flush=True)
        figures = await RUNS[name](workdir / name, PLANS[variant], seed)
        for line in figures.problems:
            print(f"  {name}: {line}", file=sys.stderr)
        rows.append(figures)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    names = args.run or list(RUNS)
    if args.workdir is not None:
        rows = asyncio.run(make_runs(names, args.variant, args.seed, args.workdir))
    else:
        with tempfile.TemporaryDirectory(prefix="gatewayd-chaos-") as tmp:
            rows = asyncio.run(make_runs(names, args.variant, args.seed, Path(tmp)))
    print(markdown(rows))
    print()
    print(chaos_lines(rows))
    return 0 if all(f.holds for f in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
