"""Checks of the hand-written backward passes: finite differences (gradcheck.py) and PyTorch
autograd, driven by one registry of reference entries per layer and loss (references.py)."""
