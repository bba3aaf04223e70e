"""HMSPAR: a reproducible lab for sparse multimodal sequence classification."""

__version__ = "0.1.0"
