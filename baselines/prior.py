"""``prior``: random parameters, the chance level every table shows."""

from __future__ import annotations

from wavinv.models.base import configure
from wavinv.models.prior import PriorSampler

__all__ = ["DEFAULTS", "TINY", "build"]

DEFAULTS: dict = {}
TINY: dict = {}


def build(**overrides) -> PriorSampler:
    return configure(PriorSampler, DEFAULTS, overrides)
