"""A finished run copied into a study: its record files only, naming the study's folder, read
by the report as the run it was; unfinished runs and taken folders are refused up front."""

import json

from normlab.report.collect import collect
from normlab.report.copy_run import main
from tests.runs import tiny_overrides, train


def test_a_finished_run_copied_into_a_study_is_the_run_it_was(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    train("-m", *tiny_overrides(tmp_path), "norm=batch", "seed=3", f"hydra.sweep.dir={sweep}")
    (run,) = [p.parent for p in sweep.glob("*/metrics.json")]
    assert "," in run.name  # Hydra's name for it, which the study shortens
    repo = tmp_path / "repo"
    dest = repo / "experiments" / "study" / "runs" / "norm=batch,seed=3"
    repo.mkdir()
    monkeypatch.chdir(repo)

    assert main([str(run), str(dest.relative_to(repo))]) == 0
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert copied == [".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml",
                      "hparams.yaml", "metrics.json"]  # fmt: skip
    texts = {name: (dest / name).read_text() for name in copied}
    # the test's own data and output roots are absolute overrides; the run's folders are gone
    assert [name for name, text in texts.items() if str(sweep) in text] == []
    assert "output_dir: experiments/study/runs/norm=batch,seed=3\n" in texts[".hydra/hydra.yaml"]
    before, after = (
        json.loads((run / "metrics.json").read_text()),
        json.loads(texts["metrics.json"]),
    )
    assert after["status"] == "finished" and after["val_acc"] == before["val_acc"]
    (row,) = collect(dest.parent)
    assert (row["status"], row["norm"], row["seed"]) == ("finished", "batch", 3)


def test_an_unfinished_run_or_a_taken_folder_is_refused_before_anything_is_copied(tmp_path, capsys):
    finished, going = tmp_path / "finished", tmp_path / "going"
    for run, status in ((finished, "finished"), (going, "running")):
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "hydra.yaml").write_text("hydra:\n  runtime:\n    cwd: /work/x\n")
        (run / "metrics.json").write_text(json.dumps({"status": status}))
    taken = tmp_path / "study" / "taken"
    taken.mkdir(parents=True)
    (taken / "metrics.json").write_text("{}")
    fresh = tmp_path / "study" / "fresh"

    assert main([str(finished), str(fresh), str(going), str(tmp_path / "study" / "g")]) == 1
    assert "'running'; only a 'finished' run is copied" in capsys.readouterr().err
    assert main([str(finished), str(taken)]) == 1
    assert "already holds files" in capsys.readouterr().err
    assert main([str(finished), str(fresh), str(finished), str(fresh)]) == 2
    assert not fresh.exists()
