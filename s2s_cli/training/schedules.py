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


# Variables weight decay leaves alone (substrings of their names): biases and layer norms' scale and offset.
NOT_DECAYED = ("bias", "gamma", "beta")


@keras.saving.register_keras_serializable(package="s2s")
class Adam(keras.optimizers.Adam):
    """keras.optimizers.Adam whose dense updates are TensorFlow's fused kernel (ResourceApplyAdam).

    Keras updates a variable in some ten element-wise ops, each a pass over the variable, its moments or a
    temporary; the fused kernel makes one pass over the three, on every core. The rule is Keras' own:
    m += (g - m)(1 - beta_1), v += (g^2 - v)(1 - beta_2), w -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) m /
    (sqrt(v) + epsilon), with the same variables, so checkpoints of either resume in the other. Sparse
    (embedding) gradients and AMSGrad keep Keras' update.
    """

    def update_step(self, gradient, variable, learning_rate):
        if isinstance(gradient, tf.IndexedSlices) or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )


def build_optimizer(config: TrainConfig, clocked: ClockedDecay | None = None) -> keras.optimizers.Optimizer:
    """Adam on the configured schedule; gradients are clipped by the trainer, after they are summed over replicas.

    With weight decay it is AdamW (Keras' decoupled decay, as in PyTorch's AdamW): every update first multiplies
    each weight matrix and embedding by 1 - lr * weight_decay, at the scheduled lr. The optimizer's variables are
    Adam's either way, so a checkpoint resumes with or without it."""
    optimizer = Adam(learning_rate=learning_rate(config, clocked), weight_decay=config.weight_decay or None)
    if config.weight_decay:
        optimizer.exclude_from_weight_decay(var_names=list(NOT_DECAYED))
    return optimizer


def learning_rate(
    config: TrainConfig, clocked: ClockedDecay | None = None
) -> keras.optimizers.schedules.LearningRateSchedule:
    """The schedule of a config whose warm-up (and, for cosine, decay steps unless `clocked` plans them) train has
    resolved."""
    if config.schedule == Schedule.COSINE:
        # Keras' CosineDecay warms up linearly from its initial rate to warmup_target, then decays to zero; starting
        # from lr / warmup, its first update is WarmupInverseSqrt's.
        warmup = max(config.warmup, 1)
        length = clocked.length if clocked is not None else max(config.decay_steps - warmup, 1)
        return keras.optimizers.schedules.CosineDecay(
            config.lr / warmup, length, warmup_target=config.lr, warmup_steps=warmup
        )
    return WarmupInverseSqrt(config.lr, config.warmup)


def plans_by_clock(config: TrainConfig) -> bool:
    """Whether a cosine decay is planned from the clock: bounded by --max-minutes, with no --max-steps or
    --decay-steps to plan it by."""
    return (
        config.schedule == Schedule.COSINE and bool(config.max_minutes) and not (config.max_steps or config.decay_steps)
    )


class ClockedDecay:
    """The length of a cosine decay that is to end when --max-minutes does.

    Until warm-up ends the learning rate does not depend on the decay's length, so it is planned then: the updates
    that fit in the time left, at the speed of the updates since the last validation plus that validation's cost
    spread over the updates between two, less one validation for the end, and never more than --epochs allow.
    Until then (and where it is never planned: `plans` False) the decay spans `most` updates.
    """

    MARGIN = 0.98  # of the time left: the speed drifts

    def __init__(self, config: TrainConfig, most: int, plans: bool = True) -> None:
        self.warmup, self.most, self.budget, self.plans = max(config.warmup, 1), most, 60 * config.max_minutes, plans
        self.length = keras.Variable(max(most - self.warmup, 1), dtype="int64", trainable=False, name="decay_steps")
        self.planned: int | None = None
        self.last = (0, 0.0, 0.0)  # the last validation: step, training seconds then, seconds it took

    def due(self, step: int) -> bool:
        return self.plans and self.planned is None and step >= self.warmup

    def validated(self, step: int, train_seconds: float, seconds: float) -> None:
        self.last = (step, train_seconds, seconds)

    def plan(self, step: int, train_seconds: float, elapsed: float, interval: int) -> int:
        """The update the decay ends at, from the training seconds so far, the seconds since this process started
        and the updates between two validations."""
        since, trained, validation = self.last
        per_update = (train_seconds - trained) / (step - since) if step > since else train_seconds / max(step, 1)
        per_update += validation / max(interval, 1)
        left = self.budget - elapsed - validation
        self.planned = min(self.most, step + max(1, int(self.MARGIN * left / max(per_update, 1e-9))))
        self.length.assign(max(self.planned - self.warmup, 1))
        return self.planned
