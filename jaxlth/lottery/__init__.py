"""Iterative magnitude pruning with rewinding, and the control branches beside it."""
