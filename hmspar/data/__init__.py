"""Datasets: simulators, the on-disk schema, splits and the loader."""
