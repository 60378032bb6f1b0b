"""Training a model on a run dir: the trainer's loop, validation, checkpoints, distribution, schedules, precision."""
