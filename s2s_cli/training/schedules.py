"""The optimizer and its learning-rate schedule: Adam with linear warm-up, then inverse-square-root decay."""

from __future__ import annotations

import keras

from s2s_cli.config import DEFAULT_WARMUP, TrainConfig


@keras.saving.register_keras_serializable(package="s2s")
class WarmupInverseSqrt(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak` over `warmup` steps, then decay with 1/sqrt(step)."""

    def __init__(self, peak: float, warmup: int) -> None:
        self.peak, self.warmup = peak, warmup

    def __call__(self, step):
        step = keras.ops.cast(step, "float32") + 1.0
        warmup = float(max(self.warmup, 1))
        return self.peak * keras.ops.minimum(step / warmup, keras.ops.sqrt(warmup / step))

    def get_config(self) -> dict:
        return {"peak": self.peak, "warmup": self.warmup}


def default_warmup(planned_steps: int) -> int:
    """Warm-up steps when --warmup is not given: DEFAULT_WARMUP, but at most a tenth of the planned steps, so that a
    small corpus still reaches the peak learning rate well before training ends."""
    return max(1, min(DEFAULT_WARMUP, planned_steps // 10))


def build_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    """Adam on the warm-up schedule; gradients are clipped by the trainer, after they are summed over replicas."""
    return keras.optimizers.Adam(learning_rate=WarmupInverseSqrt(config.lr, config.warmup))
