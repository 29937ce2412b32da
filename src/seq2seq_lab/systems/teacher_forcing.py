"""Teacher-forcing schedules (scheduled sampling, Bengio et al. 2015): the training ratio as a function of the step.

The ratio is the probability that the decoder's next input is the target token rather
than its own previous output. A schedule is a pure function of the global step, so a
resumed run continues it exactly where it stopped.

``kind``:
    * ``constant``: ``ceiling`` throughout.
    * ``linear``: from ``ceiling`` down to ``floor`` over ``steps`` steps, then ``floor``.
    * ``exponential``: ``ceiling * k ** step`` (``0 < k < 1``), never below ``floor``.
    * ``inverse_sigmoid``: ``floor + (ceiling - floor) * k / (k + exp(step / k))`` (``k >= 1``:
      the step scale; the ratio is halfway down near ``step = k ln k``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from seq2seq_lab.errors import ConfigError

__all__ = ["DRAWS", "KINDS", "TeacherForcingSchedule", "as_schedule"]

KINDS = ("constant", "linear", "exponential", "inverse_sigmoid")
DRAWS = ("batch", "token")  # one draw per step for the whole batch | one per token and sample


@dataclass(frozen=True)
class TeacherForcingSchedule:
    """The teacher-forcing ratio at a training step; see the module docstring.

    Args:
        kind: one of :data:`KINDS`.
        ceiling: the ratio at step 0 (and the constant's value).
        floor: the lowest ratio.
        steps: ``linear``: steps to go from ``ceiling`` to ``floor``.
        k: ``exponential``: the per-step factor; ``inverse_sigmoid``: the step scale.
    """

    kind: str = "constant"
    ceiling: float = 1.0
    floor: float = 0.0
    steps: int = 10000
    k: float = 0.9999

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"system.teacher_forcing.kind={self.kind!r}: must be one of {', '.join(KINDS)}")
        if not 0.0 <= self.floor <= self.ceiling <= 1.0:
            raise ConfigError(f"system.teacher_forcing: need 0 <= floor <= ceiling <= 1, got {self.floor}, {self.ceiling}")
        if self.kind == "linear" and self.steps < 1:
            raise ConfigError(f"system.teacher_forcing.steps={self.steps}: must be >= 1")
        if self.kind == "exponential" and not 0.0 < self.k < 1.0:
            raise ConfigError(f"system.teacher_forcing.k={self.k}: exponential decay needs 0 < k < 1")
        if self.kind == "inverse_sigmoid" and self.k < 1.0:
            raise ConfigError(f"system.teacher_forcing.k={self.k}: inverse sigmoid decay needs k >= 1")

    def __call__(self, step: int) -> float:
        if self.kind == "constant":
            return self.ceiling
        if self.kind == "linear":
            return max(self.floor, self.ceiling - (self.ceiling - self.floor) * step / self.steps)
        if self.kind == "exponential":
            return max(self.floor, self.ceiling * self.k ** step)
        return self.floor + (self.ceiling - self.floor) * self.k / (self.k + math.exp(min(step / self.k, 700.0)))


def as_schedule(value) -> TeacherForcingSchedule | None:
    """``system.teacher_forcing`` as a schedule: None (the model's constant), a number (constant) or a mapping."""
    if value is None or isinstance(value, TeacherForcingSchedule):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return TeacherForcingSchedule("constant", ceiling=float(value))
    if isinstance(value, Mapping):
        return TeacherForcingSchedule(**dict(value))
    raise ConfigError(f"system.teacher_forcing={value!r}: must be null, a number in [0, 1] or a schedule "
                      f"(kind: {', '.join(KINDS)})")
