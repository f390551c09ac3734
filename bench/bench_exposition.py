"""Hand-written exposition against prometheus_client, for one scrape of N series.

Renders the same latest values (a host's ~150 series, and 5000 series with
labels) with ``pharosd.http.exposition.Exposition`` and with
prometheus_client (a custom collector yielding ``GaugeMetricFamily`` and
``generate_latest``, plus its OpenMetrics encoder), prints microseconds per
scrape, and checks correctness: both outputs parsed back with
prometheus_client's parser must give the same samples, including label
values with quotes, backslashes, newlines and UTF-8, and NaN/Inf values.
Usage: ``python3 bench/bench_exposition.py [N]`` with a Python that has
prometheus_client (Debian: python3-prometheus-client). Figures in
docs/benchmarks.md.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable

from pharosd.http.exposition import Exposition, Family, sample_families, wire_pairs
from pharosd.http.store import Latest
from pharosd.model import wire_name

try:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client import openmetrics as om
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:   # pragma: no cover - a bench, run by hand
    sys.exit("needs prometheus_client (apt-get install python3-prometheus-client)")


def host_series(n_extra: int) -> list[Latest]:
    out = [Latest(f"stat{i // 10}.value_{i % 10}", (), float(i) * 1.5, 0.0, None, 0.0)
           for i in range(150)]
    out += [Latest("disk.used_percent", (("device", f"/dev/sd{i}"), ("mount", f"/m/{i}")),
                   i / 7, 0.0, None, 0.0) for i in range(n_extra)]
    out += [Latest("odd.labels", (("v", 'quote " back \\ nl \n é'),), math.nan, 0.0, None, 0.0),
            Latest("odd.inf", (), math.inf, 0.0, None, 0.0)]
    return out


class _Collector:
    def __init__(self, families: list[Family]) -> None:
        self.families = families

    def collect(self):  # type: ignore[no-untyped-def]
        for fam in self.families:
            name = wire_name(fam.metric)
            g = GaugeMetricFamily(name, fam.help, labels=None)
            for labels, value in fam.rows:
                pairs = wire_pairs(labels)
                g.add_sample(name, dict(pairs), value)
            yield g


def per_scrape(fn: Callable[[], bytes], n: int) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def parsed(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], str]]:
    out = set()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.add((s.name, tuple(sorted(s.labels.items())), repr(s.value)))
    return out


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    for extra in (0, 5000):
        series = host_series(extra)
        families = sample_families(series, lambda m: f"help of {m}")
        hand = Exposition()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(families))  # type: ignore[arg-type]
        reps = max(5, n if extra == 0 else n // 20)
        fams, reg = families, registry
        t_hand = per_scrape(lambda: hand.render(fams), reps)  # noqa: B023
        t_fresh = per_scrape(lambda: Exposition().render(fams), reps)  # noqa: B023
        t_lib = per_scrape(lambda: generate_latest(reg), reps)  # noqa: B023
        t_om = per_scrape(lambda: om.exposition.generate_latest(reg), reps)  # noqa: B023
        same = parsed(hand.render(families).decode()) == parsed(generate_latest(registry)
                                                                .decode())
        print(f"{len(series)} series: hand-written {t_hand:.0f} µs/scrape "
              f"({t_fresh:.0f} with a cold cache), prometheus_client text {t_lib:.0f} µs, "
              f"OpenMetrics {t_om:.0f} µs; same samples parsed back: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
