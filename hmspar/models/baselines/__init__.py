"""Baseline models, one module per family; found through hmspar.models.registry."""
