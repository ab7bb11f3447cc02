"""Claims are judged from their contrast's CI and Holm p, and a study's README blocks, tables and
figure list are rendered and checked by `normlab-report <study> [--check]`."""

import subprocess
import sys

import pytest

from normlab.report.claims import Claim, Judged, fill, parse
from normlab.report.contrasts import ContrastError
from normlab.report.statistics import Contrast
from normlab.run.identity import RunIdentity
from normlab.run.record import write_record
from tests.configs import make
from tests.runs import REPO


def row(difference, low, high, holm_p=0.01) -> Contrast:
    return Contrast("batch @ batch 2", "group @ batch 2", "test_error", 5, 5, difference, low,
                    high, 0.01, "paired", 0.01, holm_p, "gn_bn", "", 1)  # fmt: skip


def claim(expect="negative", margin=None) -> Claim:
    return Claim("gn_bn:test_error", "gn_bn", "test_error", expect, margin, "GN is below BN")


@pytest.mark.parametrize(
    ("expect", "margin", "values", "holm_p", "verdict"),
    [
        ("negative", None, (-0.7, -1.2, -0.2), 0.01, "holds"),
        ("negative", None, (-0.7, -1.2, -0.2), 0.15, "holds before Holm only"),
        ("negative", None, (-0.3, -0.8, 0.2), 0.01, "not resolved"),
        ("negative", None, (0.7, 0.3, 1.2), 0.01, "reversed"),
        ("positive", None, (0.7, 0.3, 1.2), 0.04, "holds"),
        ("positive", None, (-0.7, -1.2, -0.2), 0.01, "reversed"),
        ("within", 0.5, (0.01, -0.26, 0.29), 1.0, "equivalent within ±0.5"),
        ("within", 0.5, (0.01, -0.6, 0.62), 1.0, "not resolved"),
        ("within", 0.5, (0.3, 0.1, 0.5), 1.0, "differs"),
    ],
)
def test_a_claim_s_verdict_follows_its_ci_and_holm_p(expect, margin, values, holm_p, verdict):
    judged = Judged(claim(expect, margin), row(*values, holm_p=holm_p))
    assert judged.verdict == verdict
    assert Judged(claim(expect, margin), None).verdict == "not run yet"


def test_a_claim_line_gives_the_estimate_ci_test_and_holm_family():
    line = Judged(claim(), row(-0.734, -1.2467, -0.2212, holm_p=0.1483)).line()
    assert line.startswith("**holds before Holm only**: GN is below BN: −0.73 [−1.25, −0.22]")
    assert "paired, n = 5/5; p 0.01, Holm p 0.15 of 1" in line


DECLARED = {
    "metrics": ["test_error"],
    "contrasts": [{"name": "gn_bn", "a": {"norm": "batch"}, "b": {"norm": "group"}}],
}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"contrast": "nope", "expect": "negative", "says": "x"}, "is not a declared contrast"),
        ({"contrast": "gn_bn", "expect": "down", "says": "x"}, "allowed: positive, negative"),
        ({"contrast": "gn_bn", "expect": {"within": -1}, "says": "x"}, "with m > 0"),
        ({"contrast": "gn_bn", "metric": "val_error", "expect": "negative", "says": "x"},
         "is not computed for it"),
        ({"contrast": "gn_bn", "expect": "negative"}, "has no `says`"),
        ({"contrast": "gn_bn", "expect": "negative", "says": "x", "sure": 1}, "are unknown"),
    ],
)  # fmt: skip
def test_a_bad_claim_is_one_line_naming_what_is_allowed(entry, message):
    with pytest.raises(ContrastError, match=message) as error:
        parse({**DECLARED, "claims": [entry]})
    assert "\n" not in str(error.value) and "allowed" in str(error.value)


def test_placeholders_take_a_claim_s_estimate_verdict_or_p_values():
    judged = {"s": {"gn_bn:test_error": Judged(claim(), row(-0.5, -0.9, -0.1, 0.2)),
                    "later:test_error": Judged(claim(), None)}}  # fmt: skip
    text = fill("GN − BN {s/gn_bn:test_error} ({s/gn_bn:test_error.verdict}; "
                "{s/gn_bn:test_error.p})", judged)  # fmt: skip
    assert text == "GN − BN −0.50 [−0.90, −0.10] (holds before Holm only; p 0.01, Holm p 0.2 of 1)"
    assert fill("{s/later:test_error} {s/later:test_error.p}", judged) == "– –"
    with pytest.raises(ContrastError, match="names no claim"):
        fill("{s/other}", judged)


# A tiny study on disk: BN and GN, 3 seeds, GN 1 point below BN at every seed but one.
ERRORS = {("batch", 0): 0.10, ("batch", 1): 0.11, ("batch", 2): 0.12,
          ("group", 0): 0.09, ("group", 1): 0.10, ("group", 2): 0.115}  # fmt: skip
STUDY_FILE = """report: {runs: runs, out: results}
metrics: [test_error]
contrasts:
- {name: gn_bn, a: {norm: batch}, b: {norm: group}}
claims:
- {contrast: gn_bn, metric: test_error, expect: negative, says: GN is below BN, finding: true}
"""


def write_runs(folder, errors):
    for (norm, seed), error in errors.items():
        s = make([f"norm={norm}", f"seed={seed}", "data.batch_size=8", "model=cnn"])
        identity = RunIdentity.of(s)
        write_record(folder / f"{norm},{seed}",
                     {"status": "finished", **s.key_choices(), "identity": identity.hash,
                      "settings": identity.settings, "val_acc": 1 - error,
                      "test_acc": 1 - error, "epochs": 1.0})  # fmt: skip


@pytest.fixture
def study(tmp_path):
    folder = tmp_path / "study"
    write_runs(folder / "runs", ERRORS)
    (folder / "contrasts.yaml").write_text(STUDY_FILE)
    (folder / "README.md").write_text(
        "# A study\n\nProse.\n\n<!-- normlab-report:contrasts -->\nstale\n"
        "<!-- /normlab-report:contrasts -->\n\nMore prose.\n"
    )
    return folder


def test_a_study_renders_its_claims_and_check_finds_every_difference(study, report):
    assert report(study).returncode == 0
    text = (study / "README.md").read_text()
    assert text.startswith("# A study\n\nProse.\n\n<!-- normlab-report:contrasts -->\n")
    assert text.endswith("<!-- /normlab-report:contrasts -->\n\nMore prose.\n")
    assert "stale" not in text
    # GN − BN: −1, −1, −0.5 points: mean −0.83, paired t over 3 seeds
    assert "| **holds** | GN is below BN | −0.83 [−1.55, −0.12] | test_error |" in text
    assert (study / "results" / "contrasts.csv").is_file()
    figures = sorted(p.name for p in (study / "results").glob("*.png"))
    assert figures == ["error_by_cell.png"]
    assert "![error_by_cell.png](results/error_by_cell.png)" in text
    checked = report(study, "--check")
    assert checked.returncode == 0, checked.stdout

    # a run's result changes: the contrasts, the summary and the README block differ
    write_runs(study / "runs", {("group", 2): 0.13})
    checked = report(study, "--check")
    assert checked.returncode == 1
    differing = {line.split(":")[0] for line in checked.stdout.splitlines()[:-1]}
    assert differing == {str(study / "results" / name)
                         for name in ("summary.csv", "summary.md", "contrasts.csv")} | {
                         str(study / "README.md")}  # fmt: skip
    assert report(study).returncode == 0
    assert "| **not resolved** | GN is below BN |" in (study / "README.md").read_text()

    # a figure the report no longer makes is a difference, and writing removes it
    (study / "results" / "error_vs_batch.png").write_bytes(b"old")
    checked = report(study, "--check")
    assert checked.returncode == 1 and "error_vs_batch.png" in checked.stdout
    assert report(study).returncode == 0
    assert not (study / "results" / "error_vs_batch.png").exists()
    assert report(study, "--check").returncode == 0


def test_a_study_without_its_marker_is_one_line(study, report):
    (study / "README.md").write_text("# A study\n")
    result = report(study)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "<!-- normlab-report:contrasts -->" in result.stderr and "allowed" in result.stderr


def test_a_declared_study_without_runs_renders_its_claims_as_not_run(study, report):
    for run in (study / "runs").iterdir():
        for path in sorted(run.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        run.rmdir()
    assert report(study).returncode == 0
    text = (study / "README.md").read_text()
    assert "| not run yet | GN is below BN |" in text
    assert not (study / "results").exists()
    assert report(study, "--check").returncode == 0


@pytest.mark.slow
def test_every_committed_study_is_as_its_runs_give():
    """`normlab-report --check experiments`, as CI's user types it: every study's tables, figure
    names and README blocks, and experiments/README.md's answer, findings and studies."""
    result = subprocess.run([sys.executable, "-m", "normlab.report", "experiments", "--check"],
                            cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_study_readme_types_an_interval_or_a_spread_by_hand():
    """Outside the rendered blocks, no '[low, high]' interval or '± SD' in a study's README or
    experiments/README.md (perf/ measures speed and is not a study)."""
    import re

    interval = re.compile(r"\[[+−-]?\d+\.\d+, *[+−-]?\d+\.\d+\]|± *\d+\.\d+")
    block = re.compile(r"<!-- normlab-report:(\S+) -->.*?<!-- /normlab-report:\1 -->", re.S)
    typed = {}
    for path in sorted((REPO / "experiments").glob("**/README.md")):
        if path.parent.name != "perf":
            found = interval.findall(block.sub("", path.read_text()))
            if found:
                typed[str(path.relative_to(REPO))] = found[:3]
    assert typed == {}
