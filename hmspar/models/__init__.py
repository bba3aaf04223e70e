"""Models: HMSPAR, its layers, the baselines, and the registry that finds them by name."""
