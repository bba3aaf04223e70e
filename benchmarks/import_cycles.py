"""Print the import cycles of ``hmspar/`` (read statically, lazy imports included): ``python -m benchmarks.import_cycles``.

Exit status 1 when there is at least one cycle, 0 otherwise.
"""

from __future__ import annotations

import sys

from benchmarks.import_graph import ImportGraph


def main() -> int:
    graph = ImportGraph()
    cycles = graph.cycles("hmspar")
    n_edges = sum(len(v) for k, v in graph.edges.items() if k.startswith("hmspar"))
    print(f"hmspar/: {sum(m.startswith('hmspar') for m in graph.modules)} modules, {n_edges} import edges "
          f"(lazy imports included), {len(cycles)} cycle(s)")
    for cycle in cycles:
        print("  " + " -> ".join(cycle + [cycle[0]]))
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
