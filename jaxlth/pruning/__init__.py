"""Masks as pytrees and the pruning rules that produce them."""
