"""Speed and memory benchmarks (not tests)."""
