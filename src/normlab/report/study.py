"""A study folder as the report sees it, so that nothing about a result is typed by hand.

Each of a study's contrasts files with a `report:` section is one report of it:

    # experiments/<study>/contrasts.yaml
    report: {runs: [runs, ../bn_vs_gn_batch/runs], out: results}   # the first is the sweep

`normlab-report experiments/<study>` writes each report's tables and figures into its `out`
and renders its claims (normlab.report.claims) into the study's README.md, between
`<!-- normlab-report:<file stem> -->` and `<!-- /normlab-report:<file stem> -->`.
`normlab-report experiments` does so for every study, then renders experiments/README.md from
experiments/findings.yaml: the `answer` sentence (with `{study/claim}` placeholders) and the
findings list (each study's claims marked `finding`, in the file's order of `studies`).
`--check` writes nothing and lists every committed table, figure name or rendered block that
differs from what the runs give today.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from normlab.report import Report, compute
from normlab.report import claims as claim_rules
from normlab.report.collect import run_dirs
from normlab.report.contrasts import ContrastError, cell_name, read
from normlab.report.tables import aggregate, modes, varying

FINDINGS = "findings.yaml"


def marker(name: str) -> tuple[str, str]:
    return f"<!-- normlab-report:{name} -->", f"<!-- /normlab-report:{name} -->"


@dataclass
class Spec:
    """One report of a study: its contrasts file, run folders (the first is the sweep) and
    output folder."""

    path: Path
    runs: list[Path]
    out: Path

    @property
    def block(self) -> str:
        return self.path.stem


def specs(study: Path) -> list[Spec]:
    """The study's reports: its contrasts*.yaml files that have a `report:` section."""
    found = []
    for path in sorted(Path(study).glob("contrasts*.yaml")):
        section = read(path).get("report")
        if section is None:
            continue
        runs = section.get("runs", "runs")
        runs = [runs] if isinstance(runs, str) else list(runs)
        found.append(Spec(path, [(path.parent / r) for r in runs],
                          path.parent / section.get("out", "results")))  # fmt: skip
    return found


@dataclass
class Rendered:
    """What a study (or the experiments folder) renders: file -> text, and figures to draw
    (folder, name, draw)."""

    files: dict[Path, str] = field(default_factory=dict)
    figures: list[tuple[Path, str, Callable[[Path], None]]] = field(default_factory=list)
    judged: dict[str, claim_rules.Judged] = field(default_factory=dict)
    statuses: dict[Path, list[str]] = field(default_factory=dict)  # own run folder -> statuses


def has_runs(spec: Spec) -> bool:
    return spec.runs[0].is_dir() and bool(run_dirs(spec.runs[0]))


def render_study(study: Path) -> Rendered:
    """Every report of the study, and its README with the claims blocks filled in."""
    study = Path(study)
    reports = specs(study)
    if not reports:
        raise ContrastError(f"{study} has no contrasts*.yaml with a `report:` section; allowed: "
                            "a study folder (experiments/<study>)")  # fmt: skip
    rendered = Rendered()
    readme = study / "README.md"
    text = readme.read_text()
    for spec in reports:
        declared = read(spec.path)
        claims = claim_rules.parse(declared)
        report: Report | None = None
        if has_runs(spec):
            report = compute(spec.runs[0], spec.path, spec.runs[1:])
            own = [
                r
                for r in report.rows  # with folders beside, rows are named by folder
                if len(spec.runs) == 1 or r["run"].startswith(f"{spec.runs[0]}/")
            ]
            rendered.statuses[spec.runs[0]] = [str(r.get("status")) for r in own]
            for name, table in report.tables.items():
                rendered.files[spec.out / name] = table
            rendered.figures += [(spec.out, f.name, f.draw) for f in report.figures]
        judged = claim_rules.judge(claims, report.contrasts if report else None)
        rendered.judged.update({j.claim.name: j for j in judged})
        text = fill_block(text, spec.block, block(study, spec, report, judged), readme)
    rendered.files[readme] = text
    return rendered


def block(study: Path, spec: Spec, report: Report | None, judged) -> str:
    where = f"experiments/{study.name}"
    if report is None:
        head = (f"Declared in `{spec.path.name}` before any of its runs; `normlab-report "
                f"{where}` fills this in once they are in `{spec.runs[0].name}/`.")  # fmt: skip
    else:
        statuses = [r.get("status") for r in report.rows]
        counts = ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(map(str, statuses))))
        beside = ", ".join(f"`{os.path.relpath(f, study)}`" for f in spec.runs[1:])
        runs = f"{len(report.rows)} runs ({counts}"
        runs += f"; with those beside it in {beside})" if beside else ")"
        head = (f"Rendered by `normlab-report {where}` from `{spec.path.name}` and "
                f"{runs}; tables and figures in "
                f"`{os.path.relpath(spec.out, study)}/`. Each claim is a declared contrast "
                "(B − A, 95% CI; paired t-test where both cells ran the same seeds, else "
                "Welch's; Holm over the contrasts of its metric and family).")  # fmt: skip
    parts = [head, claim_rules.table(judged) if judged else ""]
    if report is not None:
        parts += [edge_note(report), mode_note(report), figure_links(study, spec, report)]
    return "\n".join(p.rstrip("\n") + "\n" for p in parts if p)


def edge_note(report: Report) -> str:
    """Which cells' best lr sits at the edge of the lrs tried (a better one may lie outside)."""
    if not report.best:
        return ""
    edge = [f"{b.cell} ({b.factor:g}× the rule's)" for b in report.best if b.at_edge]
    if not edge:
        return "No cell's best lr (`best_lr.csv`) sits at the edge of the lrs it tried.\n"
    return (
        "Best lr at the edge of the lrs tried (`best_lr.csv`; a better one may lie outside): "
        + "; ".join(edge)
        + ".\n"
    )


def mode_note(report: Report) -> str:
    """Which cells mix execution modes (solo and packed, callbacks on and off)."""
    table = aggregate(report.rows)
    mixed = [f"{cell_name(e, varying(table))} ({modes(e)})" for e in table if ";" in modes(e)]
    if not mixed:
        return "Every cell ran in one execution mode (`runs as` in `summary.md`).\n"
    return (
        "Cells that mix execution modes (`runs as` in `summary.md`; a packed member equals "
        "its solo run, and the callbacks do not change training, both by test): "
        + "; ".join(mixed)
        + ".\n"
    )


def figure_links(study: Path, spec: Spec, report: Report) -> str:
    folder = os.path.relpath(spec.out, study)
    return "\n".join(f"![{f.name}]({folder}/{f.name})" for f in report.figures) + "\n"


def fill_block(text: str, name: str, content: str, where: Path) -> str:
    start, end = marker(name)
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ContrastError(f"{where} needs one '{start}' and one '{end}', in that order; "
                            "allowed: the marker pair where the block belongs")  # fmt: skip
    before, rest = text.split(start)
    return f"{before}{start}\n{content}{end}{rest.split(end, 1)[1]}"


def render_all(experiments: Path) -> Rendered:
    """Every study listed in findings.yaml, and experiments/README.md's answer and findings."""
    experiments = Path(experiments)
    spec = read(experiments / FINDINGS)
    rendered, judged, rows = Rendered(), {}, []
    for name in spec["studies"]:
        one = render_study(experiments / name)
        rendered.files.update(one.files)
        rendered.figures += one.figures
        judged[name] = one.judged
        statuses = [s for folder in one.statuses.values() for s in folder]
        counts = ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))
        runs = f"{len(statuses)} ({counts})" if statuses else "none yet (declared)"
        about = spec.get("about", {}).get(name, "")
        rows.append(f"| [{name}]({name}/README.md) | {about} | {runs} |")
    readme = experiments / "README.md"
    text = fill_block(readme.read_text(), "answer",
                      claim_rules.fill(" ".join(str(spec["answer"]).split()), judged) + "\n",
                      readme)  # fmt: skip
    findings = []
    for name in spec["studies"]:
        lines = [j.line() for j in judged[name].values() if j.claim.finding]
        if lines:
            findings += [
                f"**[{name}]({name}/README.md)**",
                "",
                *(f"- {line}" for line in lines),
                "",
            ]
    text = fill_block(text, "findings", "\n".join(findings), readme)
    table = ["| study | what it runs | runs |", "|---|---|---|", *rows]
    rendered.files[readme] = fill_block(text, "studies", "\n".join(table) + "\n", readme)
    return rendered


def render(folder: Path) -> Rendered:
    folder = Path(folder)
    return render_all(folder) if (folder / FINDINGS).is_file() else render_study(folder)


def is_study(folder: Path) -> bool:
    folder = Path(folder)
    return (folder / FINDINGS).is_file() or bool(specs(folder))


def write(rendered: Rendered) -> list[Path]:
    """Write every file, draw every figure, and remove figures in an output folder that the
    report no longer makes."""
    for path, text in rendered.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, newline="")
    for folder in {folder for folder, _, _ in rendered.figures} | outputs(rendered):
        made = {name for f, name, _ in rendered.figures if f == folder}
        for stale in set(figure_names(folder)) - made:
            (folder / stale).unlink()
    for folder, _, draw in rendered.figures:
        draw(folder)
    return [*rendered.files, *(folder / name for folder, name, _ in rendered.figures)]


def outputs(rendered: Rendered) -> set[Path]:
    return {p.parent for p in rendered.files if p.name == "summary.md"}


def figure_names(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).glob("*.png"))


def check(rendered: Rendered) -> list[str]:
    """Each committed file or figure list that differs from the rendering, as one line."""
    differences = []
    for path, text in rendered.files.items():
        if not path.is_file():
            differences.append(f"{path}: missing")
        elif path.read_text() != text.replace("\r\n", "\n"):
            differences.append(f"{path}: differs from what the report computes")
    for folder in outputs(rendered) | {folder for folder, _, _ in rendered.figures}:
        made = sorted(name for f, name, _ in rendered.figures if f == folder)
        if figure_names(folder) != made:
            differences.append(f"{folder}: figures {figure_names(folder)}, the report makes {made}")
    return differences
