"""A study's claims: a sentence tied to one declared contrast and one metric, with the direction
it expects, judged by the report from the contrast's 95% CI and Holm p, never by eye.

    # in experiments/<study>/contrasts.yaml, beside the contrasts
    claims:
      - contrast: gn_minus_bn_at_2      # a contrast's `name`
        metric: test_error
        expect: negative                # positive | negative | {within: 0.5} (points)
        says: GN's test error is lower than BN's at batch 2
        finding: true                   # also listed in experiments/README.md

Verdicts, for an expected sign: `holds` (the CI excludes 0 on that side and Holm p < 0.05),
`holds before Holm only`, `not resolved` (the CI includes 0) or `reversed` (the CI excludes 0
on the other side). For `within: m`, an equivalence: `equivalent within ±m` (the CI inside
(−m, m)), `not resolved`, or `differs` (the CI excludes 0). A claim whose runs are not in yet is
`not run yet`.
"""

import math
import re
from dataclasses import dataclass

from normlab.report.contrasts import ContrastError
from normlab.report.statistics import Contrast

ALPHA = 0.05
SIGNS = ("positive", "negative")
FIELDS = {"name", "contrast", "metric", "expect", "says", "finding"}


@dataclass(frozen=True)
class Claim:
    name: str
    contrast: str
    metric: str
    expect: str  # positive, negative or within
    margin: float | None  # for within: the equivalence margin, in the metric's units
    says: str
    finding: bool = False


def parse(declared: dict) -> list[Claim]:
    """The file's `claims`, each checked against its declared contrasts (one line on an error)."""
    pairs = {p["name"]: p for p in declared.get("contrasts", []) if p.get("name")}
    default = declared.get("metrics", ["test_error"])
    claims = []
    for entry in declared.get("claims", []) or []:
        unknown = sorted(set(entry) - FIELDS)
        if unknown:
            raise ContrastError(f"claim keys {unknown} are unknown; allowed: {sorted(FIELDS)}")
        name = entry.get("contrast")
        if name not in pairs:
            raise ContrastError(f"claim contrast {name!r} is not a declared contrast's name; "
                                f"allowed: {sorted(pairs)}")  # fmt: skip
        metric = entry.get("metric", default[0])
        if metric not in pairs[name].get("metrics", default):
            raise ContrastError(f"claim on {name!r}: metric {metric!r} is not computed for it; "
                                f"allowed: {pairs[name].get('metrics', default)}")  # fmt: skip
        expect, margin = entry.get("expect"), None
        if isinstance(expect, dict) and set(expect) == {"within"}:
            expect, margin = "within", float(expect["within"])
        if expect not in (*SIGNS, "within") or (margin is not None and margin <= 0):
            raise ContrastError(f"claim on {name!r}: expect={entry.get('expect')!r}; allowed: "
                                "positive, negative or {within: m} with m > 0")  # fmt: skip
        if not str(entry.get("says", "")).strip():
            raise ContrastError(f"claim on {name!r} has no `says`; allowed: a plain sentence")
        says = str(entry["says"]).strip()
        claims.append(Claim(str(entry.get("name", f"{name}:{metric}")), name, metric, expect,
                            margin, says, bool(entry.get("finding"))))  # fmt: skip
    names = [c.name for c in claims]
    if len(set(names)) < len(names):
        raise ContrastError(f"claim names {sorted({n for n in names if names.count(n) > 1})} are "
                            "declared twice; allowed: unique names")  # fmt: skip
    return claims


@dataclass(frozen=True)
class Judged:
    """A claim and its contrast row (None while its runs are not in)."""

    claim: Claim
    row: Contrast | None

    @property
    def verdict(self) -> str:
        c, row = self.claim, self.row
        if row is None:
            return "not run yet"
        if c.expect == "within":
            if -c.margin < row.low and row.high < c.margin:
                return f"equivalent within ±{c.margin:g}"
            return "differs" if row.excludes_zero else "not resolved"
        if not row.excludes_zero:
            return "not resolved"
        if (row.low > 0) != (c.expect == "positive"):
            return "reversed"
        return "holds" if row.holm_p < ALPHA else "holds before Holm only"

    @property
    def estimate(self) -> str:
        """'−0.73 [−1.25, −0.22]', in the metric's units."""
        row = self.row
        if row is None:
            return "–"
        small = max(abs(row.low), abs(row.high)) < 0.2  # distances: std units, not points
        f = "{:+.3f}" if small else "{:+.2f}"
        return f"{number(f, row.difference)} [{number(f, row.low)}, {number(f, row.high)}]"

    def line(self) -> str:
        """One line of a findings list."""
        head = f"**{self.verdict}**: {self.claim.says}"
        if self.row is None:
            return f"{head} (declared before its runs; not run yet)."
        return f"{head}: {self.estimate} {self.claim.metric.replace('_', ' ')} ({self.stats()})."

    def stats(self) -> str:
        row = self.row
        return (f"{side(row.b)} − {side(row.a)}; {row.test}, n = {row.n_a}/{row.n_b}; "
                f"{self.p_values()}")  # fmt: skip

    def p_values(self) -> str:
        """'p 0.012, Holm p 0.036 of 3'."""
        row = self.row
        return f"p {p_value(row.p)}, Holm p {p_value(row.holm_p)} of {row.family_size}"


def judge(claims: list[Claim], rows: list[Contrast] | None) -> list[Judged]:
    """Each claim with its row (`rows` None: the study's runs are not in yet)."""
    found = {(r.name, r.metric): r for r in rows or []}
    return [Judged(c, None if rows is None else found[(c.contrast, c.metric)]) for c in claims]


def side(name: str) -> str:
    """A difference of differences' side in brackets: [(B) − (A)]."""
    return f"[{name}]" if " − " in name else name


def number(fmt: str, value: float) -> str:
    return fmt.format(value).replace("-", "−")


def p_value(p: float) -> str:
    return "–" if math.isnan(p) else f"{p:.2g}"


def table(judged: list[Judged]) -> str:
    """A study README's claims block: one row per claim."""
    lines = ["| verdict | claim | B − A [95% CI] | metric | B − A is | test, n | p | Holm p (of) |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for j in judged:
        row = j.row
        if row is None:
            lines.append(f"| {j.verdict} | {j.claim.says} | – | {j.claim.metric} | – | – | – | – |")
            continue
        lines.append(f"| **{j.verdict}** | {j.claim.says} | {j.estimate} | {row.metric} | "
                     f"{side(row.b)} − {side(row.a)} | {row.test}, {row.n_a}/{row.n_b} | "
                     f"{p_value(row.p)} | {p_value(row.holm_p)} ({row.family_size}) |")  # fmt: skip
    return "\n".join(lines) + "\n"


PLACEHOLDER = re.compile(r"\{([\w-]+)/([\w:-]+?)(\.verdict|\.p)?\}")


def fill(template: str, judged: dict[str, dict[str, Judged]]) -> str:
    """`{study/claim}` -> the claim's estimate, `{study/claim.verdict}` -> its verdict,
    `{study/claim.p}` -> its p and Holm p ('–' while not run)."""

    def value(match: re.Match) -> str:
        study, name, field = match.groups()
        if name not in judged.get(study, {}):
            raise ContrastError(f"{{{study}/{name}}} names no claim; allowed: study/claim-name")
        j = judged[study][name]
        if field == ".verdict":
            return j.verdict
        if field == ".p":
            return "–" if j.row is None else j.p_values()
        return j.estimate

    return PLACEHOLDER.sub(value, template)
