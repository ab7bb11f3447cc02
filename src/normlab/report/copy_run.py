"""A finished run into a study: its record (metrics.json, hparams.yaml, .hydra/*.yaml), under
the name the study gives it, made portable (normlab.report.portable). Checkpoints, events and
logs stay on the machine.

    python -m normlab.report.copy_run <run folder> experiments/<study>/runs/<name> [...]

The last argument is the study's folder for the run; several runs take a folder each
(`RUN DEST RUN DEST ...`).
"""

import shutil
import sys
from pathlib import Path

from normlab.report.portable import make_portable
from normlab.run.record import RECORD, read_record

RECORD_FILES = (RECORD, "hparams.yaml")


def refuse(run: Path, dest: Path) -> None:
    """ValueError, in one line, unless `run` is a finished run and `dest` holds nothing yet."""
    record = read_record(run)
    if record is None or not (run / ".hydra" / "hydra.yaml").is_file():
        raise ValueError(f"{run} is not a run folder (needs {RECORD} and .hydra/hydra.yaml)")
    if record.get("status") != "finished":
        raise ValueError(f"{run} is {record.get('status')!r}; only a 'finished' run is copied")
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"{dest} already holds files; a study's run folder is written once")


def copy_run(run: Path, dest: Path, repo: Path) -> list[Path]:
    """Copies the finished run's record files from `run` into the new folder `dest` and makes
    them portable relative to `repo`; returns the files written (ValueError as `refuse`)."""
    run, dest = Path(run), Path(dest)
    refuse(run, dest)
    (dest / ".hydra").mkdir(parents=True, exist_ok=True)
    sources = [run / name for name in RECORD_FILES if (run / name).is_file()]
    sources += sorted((run / ".hydra").glob("*.yaml"))
    written = []
    for source in sources:
        target = dest / source.relative_to(run)
        shutil.copyfile(source, target)
        written.append(target)
    make_portable(dest, Path(repo))
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or len(args) % 2:
        print("usage: python -m normlab.report.copy_run RUN DEST [RUN DEST ...]", file=sys.stderr)
        return 2
    pairs = list(zip(args[::2], args[1::2], strict=True))
    if len({Path(dest).resolve() for _, dest in pairs}) < len(pairs):
        print("copy_run: two runs name the same DEST; each run needs its own", file=sys.stderr)
        return 2
    try:
        for run, dest in pairs:  # every pair is checked before any is copied
            refuse(Path(run), Path(dest))
        for run, dest in pairs:
            written = copy_run(Path(run), Path(dest), Path.cwd())
            print(f"{run} -> {dest}: {len(written)} files")
    except ValueError as error:
        print(f"copy_run: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
