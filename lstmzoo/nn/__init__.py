"""Layers with explicit forward and backward on NumPy (or CuPy) arrays."""

from .module import Module

__all__ = ["Module"]
