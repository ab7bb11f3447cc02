"""normlab.job_files: what Hydra writes into a job's folder before normlab refuses the job is
put back byte for byte (the end-to-end check is in test_run_folder and the pack tests)."""

from omegaconf import OmegaConf

from normlab.job_files import KeepRefusedFolders, put_back


def folder_bytes(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def hydra_writes(run_dir) -> None:
    """What Hydra's run_job does to a folder before the task: .hydra/ rewritten, a log line."""
    for name in ("config", "hydra", "overrides"):
        (run_dir / ".hydra" / f"{name}.yaml").write_text(f"{name}: the refused launch's\n")
    with (run_dir / "train.log").open("a") as log:
        log.write("[refused launch] a line\n")
    (run_dir / ".lock").write_text("99999")


def a_finished_folder(run_dir) -> None:
    (run_dir / ".hydra").mkdir(parents=True)
    for name in ("config", "hydra", "overrides"):
        (run_dir / ".hydra" / f"{name}.yaml").write_text(f"{name}: the finished run's\n")
    (run_dir / "train.log").write_text("the finished run's log\n")
    (run_dir / ".lock").write_text("12345")
    (run_dir / "metrics.json").write_text('{"status": "finished"}\n')


def test_a_single_run_s_files_are_put_back(tmp_path):
    run_dir = tmp_path / "run"
    a_finished_folder(run_dir)
    before = folder_bytes(run_dir)
    callback = KeepRefusedFolders()
    callback.on_run_start(OmegaConf.create({"hydra": {"run": {"dir": str(run_dir)}}}))
    hydra_writes(run_dir)
    callback.on_job_start(OmegaConf.create({"hydra": {"runtime": {"output_dir": str(run_dir)}}}))
    assert put_back(run_dir) and folder_bytes(run_dir) == before


def test_a_sweep_s_job_folders_are_put_back_and_a_busy_folder_s_lock_is_left(tmp_path):
    sweep = tmp_path / "sweep"
    for name in ("seed=0", "seed=1"):
        a_finished_folder(sweep / name)
    before = {name: folder_bytes(sweep / name) for name in ("seed=0", "seed=1")}
    callback = KeepRefusedFolders()
    callback.on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    for name in ("seed=0", "seed=1"):
        hydra_writes(sweep / name)
        output = {"hydra": {"runtime": {"output_dir": str(sweep / name)}}}
        callback.on_job_start(OmegaConf.create(output))
    assert put_back(sweep / "seed=0") and folder_bytes(sweep / "seed=0") == before["seed=0"]
    assert put_back(sweep / "seed=1", lock=False)
    after = folder_bytes(sweep / "seed=1")
    assert after[".lock"] == b"99999"  # the running holder's, not overwritten
    assert {k: v for k, v in after.items() if k != ".lock"} == {
        k: v for k, v in before["seed=1"].items() if k != ".lock"
    }


def test_a_new_folder_is_left_as_hydra_made_it(tmp_path):
    run_dir = tmp_path / "new"
    callback = KeepRefusedFolders()
    callback.on_run_start(OmegaConf.create({"hydra": {"run": {"dir": str(run_dir)}}}))
    (run_dir / ".hydra").mkdir(parents=True)
    hydra_writes(run_dir)
    callback.on_job_start(OmegaConf.create({"hydra": {"runtime": {"output_dir": str(run_dir)}}}))
    assert not put_back(run_dir) and (run_dir / ".hydra" / "config.yaml").exists()
