"""Both benchmarks, one after the other; each rewrites its own section of docs/benchmarks.md.

    make bench                      # or: PYTHONPATH=. python -m bench.run [--runs 5]

About 20 minutes on a 2-core machine (most of it the transformers engine at 512 new tokens).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bench import app_vs_engine, openai_path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per row (medians are reported)")
    args = parser.parse_args(argv)
    runs = ["--runs", str(args.runs), "--write"]
    app_vs_engine.main(runs)
    openai_path.main(runs)


if __name__ == "__main__":
    main()
