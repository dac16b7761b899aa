"""The journey steps of the simulated dealer group, one module per step.

Each step draws from its own random stream (``GroupState.rng``), logs its events, records the
truth of the outcomes it decides, and returns what the next steps need.
"""
