"""Packed sweeps: K runs that differ only in values (seed, lr, optimizer, norm option values)
trained in one process as one vectorized model, each member the same run as alone."""
