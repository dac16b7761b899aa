"""Friction drivers: the model's explanations in dealer language, roll-ups and the fix to try."""
