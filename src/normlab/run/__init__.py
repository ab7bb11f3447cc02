"""A run's wiring, one floor on another (each module imports only those listed before it):

- sizes: the facts derived from the settings (steps an epoch, the images probes see);
- identity: the settings that change a run's numbers, and their hash;
- record: metrics.json, bound to the identity; lock: one process per run folder;
- resume: checkpoints that carry the identity, the RNG and the fit time;
- build: the LightningModule for the settings;
- job: the Hydra job a run is (its folder, whether it is in a sweep, how a failure is said);
- trainer: the Trainer with its logger and callbacks;
- finish: a fit's results and status;
- fit: run(), the whole of it, and run_and_record(), as train.py calls it.

normlab.pack stands above them all. Nothing is imported here, so that a lower floor is imported
without the ones above it."""
