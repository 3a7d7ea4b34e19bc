"""What every benchmark prints with its figures: each goal, the measured value, whether
it is met (or by how much it is missed), and the load average the run saw (these
machines are shared: a figure means little without it)."""

from __future__ import annotations

import os

__all__ = ["goal", "load_line"]


def load_line() -> str:
    """The 1/5/15-minute load averages and the core count, as one line."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} cores"


def goal(label: str, value: float, target: float, at_least: bool = True, unit: str = "") -> str:
    """One line: `label` measured as `value` against `target` (a floor, or a ceiling with
    `at_least=False`), met or missed by how much."""
    met = value >= target if at_least else value <= target
    sign = ">=" if at_least else "<="
    verdict = "met" if met else f"MISSED by {abs(value - target) / target:.0%}"
    return f"goal {label} {sign} {target:g}{unit}: {value:.2f}{unit}, {verdict}"
