"""python -m normlab.report <sweep dir> [<sweep dir> ...] [--out DIR]: summarize a (running or
finished) sweep, and the runs of any further folders beside it as cells of their own."""

import argparse
import sys
from pathlib import Path

from normlab.report import collect, summarize
from normlab.report.collect import run_dirs
from normlab.report.contrasts import ContrastError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m normlab.report", description=__doc__)
    parser.add_argument("sweep", type=Path, help="a multirun folder (or any folder of runs)")
    parser.add_argument(
        "beside",
        type=Path,
        nargs="*",
        help="more folders of runs to compare against (another study's), as cells of their own",
    )
    parser.add_argument("--out", type=Path, help="where to write (default: the sweep folder)")
    parser.add_argument(
        "--contrasts",
        type=Path,
        help="the study's declared contrasts (default: <sweep>/contrasts.yaml)",
    )
    args = parser.parse_args(argv)
    for folder in (args.sweep, *args.beside):
        if not folder.is_dir():
            print(f"error: no sweep folder at {folder}", file=sys.stderr)
            return 2
        if not run_dirs(folder):
            print(f"error: no runs (folders with .hydra/config.yaml) under {folder}",
                  file=sys.stderr)  # fmt: skip
            return 2
    rows = collect(args.sweep, *args.beside)
    if args.contrasts is not None and not args.contrasts.is_file():
        print(f"error: no contrasts file at {args.contrasts}", file=sys.stderr)
        return 2
    try:
        written = summarize(args.sweep, args.out, args.contrasts, args.beside)
    except ContrastError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    counts = {s: sum(r.get("status") == s for r in rows) for s in {r.get("status") for r in rows}}
    print(f"{len(rows)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
