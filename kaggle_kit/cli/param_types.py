"""Click parameter types for numbers that must be finite: click's FloatRange lets NaN through (`nan < lo` is false)
and an open-ended float lets `inf` through, so every float flag goes through these."""

from __future__ import annotations

import math

import click


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange that refuses NaN and +/-inf in the same one-line usage error as an out-of-range value."""

    name = "number"

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


FINITE = FiniteFloatRange()
SECONDS = FiniteFloatRange(min=0, min_open=True)  # a wait of 0 or less would spin or make time.sleep raise
PROBABILITY = FiniteFloatRange(0.0, 1.0)
