"""normlab's Hydra launcher for packed sweeps: hydra/launcher=packed."""
