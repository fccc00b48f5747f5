"""`sd-bridge bench`: the engine and the whole pipeline, measured side by side in one run.

Every comparison (stream batch vs sequential, RCFG variants, pipeline vs engine alone, static
vs moving input under the similarity filter) is a ratio of two measurements taken in the same
process, on the same machine, minutes apart, so that the ratio means something even on a
machine shared with other work. Nothing here is imported by the daemon.
"""

from .options import SECTIONS, BenchOptions
from .results import Report, Row, Section
from .runner import run_bench

__all__ = ["SECTIONS", "BenchOptions", "Report", "Row", "Section", "run_bench"]
