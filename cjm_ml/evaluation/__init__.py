"""Judging the models and their drivers against the simulator's truth: planted-friction
recovery, the re-simulated what-if, and the demo that runs the whole job on a simulated group.

The only package besides the command line that imports ``cjm_ml.simulation``. Modules are
imported directly (``cjm_ml.evaluation.recovery`` and so on); nothing is imported here.
"""
