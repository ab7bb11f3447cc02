"""python -m normlab.report <sweep dir> [<sweep dir> ...] [--out DIR]: summarize a (running or
finished) sweep, and the runs of any further folders beside it as cells of their own.

python -m normlab.report experiments/<study> [--check]: a study's reports, as its contrasts
files' `report:` sections declare them, and its README's rendered claims; `experiments` itself:
every study and experiments/README.md. --check writes nothing and exits 1 on any difference."""

import argparse
import sys
from pathlib import Path

from normlab.report import collect, study, summarize
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
    parser.add_argument(
        "--check",
        action="store_true",
        help="for a study folder: compare the committed tables, figure names and rendered "
        "blocks with what the runs give today; write nothing",
    )
    args = parser.parse_args(argv)
    plain = not args.beside and args.out is None and args.contrasts is None
    if plain and args.sweep.is_dir() and study.is_study(args.sweep):
        return study_main(args.sweep, args.check)
    if args.check:
        print(f"error: --check needs a study folder (a contrasts*.yaml with a `report:` "
              f"section, or experiments/findings.yaml); {args.sweep} is not one",
              file=sys.stderr)  # fmt: skip
        return 2
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


def study_main(folder: Path, check: bool) -> int:
    try:
        rendered = study.render(folder)
    except (ContrastError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if check:
        differences = study.check(rendered)
        for line in differences:
            print(line)
        if differences:
            print(f"{folder}: {len(differences)} difference(s) from what the report computes; "
                  f"`normlab-report {folder}` rewrites them")  # fmt: skip
        else:
            print(f"{folder}: every table, figure name and rendered block is as computed")
        return 1 if differences else 0
    for path in study.write(rendered):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
