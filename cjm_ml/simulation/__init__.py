"""A simulated dealer group with recorded ground truth, for the demo, tests and benchmarks."""

from cjm_ml.simulation.generator import SimulatedGroup, SimulationConfig, simulate
from cjm_ml.simulation.output import write_simulation

__all__ = ["SimulatedGroup", "SimulationConfig", "simulate", "write_simulation"]
