"""Committed run folders that name no machine's folders.

A run's Hydra files (.hydra/hydra.yaml, a sweep's multirun.yaml) and older records
(`best_checkpoint`, `packed_with.folder`) hold absolute paths of the machine that ran it.
`make_portable(study_runs, repo)` rewrites them relative to the repository, from where each
run folder sits now: the run's own folder, its sweep's folder, and the checkout it ran from
(`.`). `machine_paths(text)` finds what is left.

    python -m normlab.report.portable experiments/<study>/runs
"""

import json
import os
import re
import sys
from functools import partial
from pathlib import Path

from omegaconf import OmegaConf

MACHINE_PATH = re.compile(
    r"(?<![\w.~-])/(?:work|tmp|home|root|opt|usr|mnt|scratch|srv|var|Users)/[^\s\"',\]}]*"
)


def machine_paths(text: str) -> list[str]:
    """The absolute paths of a machine's folders in `text`."""
    return MACHINE_PATH.findall(text)


def replace_prefixes(text: str, prefixes: dict[str, str]) -> str:
    """`text` with each path that starts with a key of `prefixes` (longest first) starting with
    its value instead: absolute paths, and relative ones an earlier rewrite left (so a run folder
    moved again, or renamed, names where it is now). A key matches whole (Hydra's folder names
    hold commas, `norm=batch,seed=0`) and only up to a path's end or a `/`."""
    keys = {k: new for old, new in prefixes.items() if (k := old.rstrip("/")) not in {"", "."}}
    if not keys:
        return text
    alternatives = "|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w.~-])({alternatives})(?=[/\s\"',\]}}]|$)", re.MULTILINE)
    return pattern.sub(lambda match: keys[match.group(1)], text)


def run_prefixes(hydra_file: Path, run_dir: Path, repo: Path) -> tuple[dict[str, str], str]:
    """The absolute folders a run's hydra.yaml names (the checkout it ran from, its output
    folder and its sweep's folder), each mapped to where it is now, relative to `repo`; and
    the output folder as Hydra named it."""
    runtime = OmegaConf.load(hydra_file).hydra.runtime
    here = os.path.relpath(run_dir, repo)
    output = str(runtime.output_dir)
    prefixes = {
        str(runtime.cwd): ".",
        output: here,
        str(Path(output).parent): os.path.dirname(here),
    }
    return prefixes, output


def portable_record(record: dict, output_dir: str) -> dict:
    """A record's `best_checkpoint` relative to its run folder, and `packed_with.folder`
    relative to the run's `output_dir` (as records have been written since the packs' folders
    moved with their sweeps)."""
    best = record.get("best_checkpoint")
    if isinstance(best, str) and os.path.isabs(best):
        record["best_checkpoint"] = "checkpoints/" + Path(best).name
    pack = record.get("packed_with")
    if isinstance(pack, dict) and os.path.isabs(pack.get("folder", "")):
        pack["folder"] = os.path.relpath(pack["folder"], output_dir)
    return record


def rewrite(path: Path, new_text) -> bool:
    """Writes `new_text(text)` over `path`'s text when it differs; whether it did."""
    text = path.read_text()
    new = new_text(text)
    if new != text:
        path.write_text(new)
    return new != text


def make_portable(runs: Path, repo: Path) -> list[Path]:
    """Rewrites every run folder under `runs` (and its sweeps' multirun.yaml); returns the
    files changed."""
    changed = []
    sweep_prefixes: dict[str, str] = {}
    for hydra_file in sorted(Path(runs).rglob(".hydra/hydra.yaml")):
        run_dir = hydra_file.parent.parent
        prefixes, output = run_prefixes(hydra_file, run_dir, repo)
        sweep_prefixes.update({k: v for k, v in prefixes.items() if k != output})
        for path in sorted((run_dir / ".hydra").glob("*.yaml")):
            if rewrite(path, partial(replace_prefixes, prefixes=prefixes)):
                changed.append(path)
        record = run_dir / "metrics.json"
        if record.is_file() and rewrite(record, partial(portable_json, output_dir=output)):
            changed.append(record)
    for path in sorted(Path(runs).rglob("multirun.yaml")):
        if rewrite(path, partial(replace_prefixes, prefixes=sweep_prefixes)):
            changed.append(path)
    return changed


def portable_json(text: str, output_dir: str) -> str:
    """A record's text (as record.py writes it: indent 2) after portable_record."""
    new = json.dumps(portable_record(json.loads(text), output_dir), indent=2)
    return new + ("\n" if text.endswith("\n") else "")


def main() -> None:
    repo = Path.cwd()
    for runs in sys.argv[1:]:
        changed = make_portable(Path(runs), repo)
        print(f"{runs}: {len(changed)} files rewritten")


if __name__ == "__main__":
    main()
