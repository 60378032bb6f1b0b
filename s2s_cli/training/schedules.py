"""The optimizer and its learning-rate schedule: Adam with linear warm-up, then inverse-square-root decay or a
cosine decay to zero over the planned updates."""

from __future__ import annotations

import keras

from s2s_cli.config import DEFAULT_WARMUP, Schedule, TrainConfig


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


WARMUP_EPOCHS = 3


def default_warmup(steps_per_epoch: int) -> int:
    """Warm-up steps when --warmup is not given: DEFAULT_WARMUP, but at most WARMUP_EPOCHS epochs, so that a small
    corpus still reaches the peak learning rate early. It depends on the data only, not on when training stops, so
    a run stopped and extended follows the schedule of one that ran straight through."""
    return max(1, min(DEFAULT_WARMUP, WARMUP_EPOCHS * steps_per_epoch))


def build_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    """Adam on the configured schedule; gradients are clipped by the trainer, after they are summed over replicas."""
    return keras.optimizers.Adam(learning_rate=learning_rate(config))


def learning_rate(config: TrainConfig) -> keras.optimizers.schedules.LearningRateSchedule:
    """The schedule of a config whose warm-up (and, for cosine, decay steps) train has resolved."""
    if config.schedule == Schedule.COSINE:
        # Keras' CosineDecay warms up linearly from its initial rate to warmup_target, then decays to zero; starting
        # from lr / warmup, its first update is WarmupInverseSqrt's.
        warmup = max(config.warmup, 1)
        return keras.optimizers.schedules.CosineDecay(
            config.lr / warmup, max(config.decay_steps - warmup, 1), warmup_target=config.lr, warmup_steps=warmup
        )
    return WarmupInverseSqrt(config.lr, config.warmup)
