"""The optimizer and its learning-rate schedule: Adam with linear warm-up, then inverse-square-root decay or a
cosine decay to zero over the planned updates."""

from __future__ import annotations

import keras
import tensorflow as tf

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
    return FusedAdam(learning_rate=learning_rate(config))


@keras.saving.register_keras_serializable(package="s2s")
class FusedAdam(keras.optimizers.Adam):
    """Keras' Adam, each variable with a dense gradient updated by TensorFlow's fused ApplyAdam kernel: the same
    formula (bias correction folded into the rate, epsilon outside the square root) in one pass over the variable
    and its two moments, where Keras' update is about ten elementwise ops, each a pass of its own. Same variables,
    same checkpoints.

    A sparse gradient (an embedding's, one row per token occurrence) keeps Keras' update, whose second moment adds
    the square of each occurrence's row (not the square of their sum, as summing the rows first would): what the
    recipes were chosen with."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = keras.ops.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=keras.ops.power(keras.ops.cast(self.beta_1, dtype), step),
            beta2_power=keras.ops.power(keras.ops.cast(self.beta_2, dtype), step),
            lr=keras.ops.cast(learning_rate, dtype),
            beta1=keras.ops.cast(self.beta_1, dtype),
            beta2=keras.ops.cast(self.beta_2, dtype),
            epsilon=keras.ops.cast(self.epsilon, dtype),
            grad=keras.ops.cast(gradient, dtype),
        )


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
