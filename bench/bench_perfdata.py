"""CPU cost of one exec probe run whose plugin prints many perfdata items.

Writes a small plugin script into a temporary directory that prints
``OK | `` and N items, runs it through a real ``ExecProbe.check`` and prints
the CPU seconds (user+system of this process: parsing, de-duplication,
samples; the plugin's own CPU is not counted) and how many values came out.
Two shapes: every item with the same label (``a=1 a=1 ...``, the worst case
for de-duplicating names) and every label distinct (``a0=1 a1=1 ...``).
Usage: ``python bench/bench_perfdata.py [N]`` (default 16000). The figures go
in docs/benchmarks.md.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from pharosd.probes.config import ExecProbeConfig
from pharosd.probes.exec import ExecProbe

PLUGIN = """#!{python}
import sys
n = {n}
same = {same}
items = ("a=1" if same else "a%d=1" % i for i in range(n))
sys.stdout.write("OK | " + " ".join(items) + "\\n")
"""


def run(n: int, same: bool, folder: str) -> tuple[float, int]:
    path = os.path.join(folder, f"plugin_{'same' if same else 'distinct'}")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(PLUGIN.format(python=sys.executable, n=n, same=same))
    os.chmod(path, 0o755)
    probe = ExecProbe(ExecProbeConfig(name="many", kind="exec", command=(path,)), 60.0)
    cpu0 = time.process_time()
    result = probe.check(time.time())
    cpu = time.process_time() - cpu0
    return cpu, len(result.values)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 16000
    with tempfile.TemporaryDirectory() as folder:
        for same in (True, False):
            cpu, values = run(n, same, folder)
            shape = "same label" if same else "distinct labels"
            print(f"{n} items, {shape}: {cpu:.3f} CPU s, {values} values")


if __name__ == "__main__":
    main()
