"""Trainers: the only place that owns the mesh, jit, RNG streams, checkpoints and metric writers."""
