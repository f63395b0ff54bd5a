"""Training: one core (state, loop, checkpoint, mesh, writer, config, inputs) and one module per task.

The tasks are `pretrain` (SleepFM contrastive pretraining), `finetune` (transfer to wake EEG/ECG)
and `sleepmg` (SleepMG and its baselines); this package is the only place that owns the mesh,
jit, RNG streams, checkpoints and metric writers. Layout: docs/architecture.md §6.
"""
