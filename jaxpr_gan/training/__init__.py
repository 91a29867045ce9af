"""Training: the state (state.py), the pure compiled steps (steps.py), the loop (loop.py)."""
