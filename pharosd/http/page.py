"""The status page at ``/``: what a sysadmin reads at a glance (pure).

Server-rendered HTML with its style inline: no script, no external asset,
readable in a text browser, reloading itself every ``refresh`` seconds
(``<meta http-equiv="refresh">``), one column on a phone. Every value is
escaped: plugin output, label values and error texts are untrusted.

Sections: the head line (host, version, uptime, config and reload state),
open alerts (level, rule and labels, state, age, summary, silence),
probes (state and last output), sinks (backlog, delivered, dropped, last
error), the uplink (per receiver: up, buffer, spill, last error) and the
workers. ``render_page(state, probes, now, refresh)`` takes the same state
as ``pharosd status --json`` plus the probes from the latest values.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pharosd.model import rfc3339
from pharosd.units import format_duration

_PROBE = re.compile(r"^probe\.(?P<name>.+)\.(?P<what>status|state)$")
STATUS_NAMES = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
LEVEL_ORDER = {"critical": 0, "warning": 1, "info": 2}

_STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;max-width:72em;padding:.5em 1em;
color:#222;background:#fafafa}
h1{font-size:1.3em;margin:.3em 0}h2{font-size:1.1em;margin:1.2em 0 .3em}
.meta{color:#555;margin:0}.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.25em .5em;
border-bottom:1px solid #ddd;vertical-align:top}th{font-weight:600;background:#eee}
td.num{text-align:right;font-variant-numeric:tabular-nums}
pre,code{font:13px/1.3 ui-monospace,monospace;white-space:pre-wrap;word-break:break-word;
margin:0}
.badge{display:inline-block;padding:0 .4em;border-radius:.3em;font-weight:600}
.critical,.CRITICAL,.down,.FAILED{background:#c62828;color:#fff}
.warning,.WARNING{background:#f9a825;color:#000}.pending{background:#ddd;color:#000}
.info,.UNKNOWN{background:#1565c0;color:#fff}.OK,.up,.ok{background:#2e7d32;color:#fff}
.none{color:#555}
@media (max-width:40em){body{font-size:14px;padding:.3em}th,td{padding:.2em .3em}}
"""


@dataclass(frozen=True)
class ProbeView:
    name: str
    status: int | None
    state: int | None
    note: str | None
    at: float | None


def probes_from(series: Iterable[Any]) -> list[ProbeView]:
    """Probe rows from ``store.Latest`` entries of ``probe.<name>.status`` / ``.state``."""
    found: dict[str, dict[str, Any]] = {}
    for s in series:
        m = _PROBE.match(s.metric)
        if m is None or s.labels:
            continue
        row = found.setdefault(m["name"], {})
        row[m["what"]] = s.value
        if m["what"] == "status":
            row["note"], row["at"] = s.note, s.ts
    out = []
    for name in sorted(found):
        row = found[name]
        out.append(ProbeView(name, _int(row.get("status")), _int(row.get("state")),
                             row.get("note"), row.get("at")))
    return out


def _int(v: Any) -> int | None:
    try:
        return int(v) if v is not None and v == v else None
    except (TypeError, ValueError):
        return None


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def age(seconds: float | None) -> str:
    """How long, at a glance (``units.format_duration``, coarse)."""
    if seconds is None:
        return "-"
    return format_duration(seconds, coarse=True)


def _num(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return e(v)


def _badge(text: str, cls: str | None = None) -> str:
    return f'<span class="badge {e(cls or text)}">{e(text)}</span>'


def _table(head: Sequence[str], rows: list[list[str]], empty: str, num: Sequence[int] = ()
           ) -> str:
    if not rows:
        return f'<p class="none">{e(empty)}</p>'
    th = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if i in num else f"<td>{c}</td>"
                         for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f'<div class="scroll"><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody>' \
           f"</table></div>"


def _labels(labels: Any) -> str:
    if isinstance(labels, Mapping) and labels:
        return "<br>".join(f"<code>{e(k)}={e(v)}</code>" for k, v in sorted(labels.items()))
    return ""


def _when(ts: Any, now: float) -> str:
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        return "-"
    return f'<span title="{e(rfc3339(float(ts)))}">{e(age(now - float(ts)))} ago</span>'


def _alerts(alerts: list[Mapping[str, Any]], now: float) -> tuple[str, int, int]:
    firing = [a for a in alerts if a.get("status") in ("firing", "resolving")]
    pending = [a for a in alerts if a.get("status") == "pending"]
    ordered = sorted(firing, key=lambda a: (LEVEL_ORDER.get(str(a.get("level")), 9),
                                            str(a.get("rule")))) + pending
    rows = []
    for a in ordered:
        status = str(a.get("status", ""))
        shown = "firing" if status == "resolving" else status
        silence = _hold_text(a.get("silenced_by"))
        rows.append([
            _badge(str(a.get("level", "-"))),
            f"<strong>{e(a.get('rule'))}</strong><br>{_labels(a.get('labels'))}",
            _badge(shown, shown if shown == "pending" else str(a.get("level", ""))),
            e(age(now - a["since"])) if isinstance(a.get("since"), int | float) else "-",
            e(a.get("summary") or _value_text(a)),
            e(silence) if silence else "-",
        ])
    table = _table(["Level", "Alert", "State", "Age", "Summary", "Silenced by"], rows,
                   "No open alerts.")
    return table, len(firing), len(pending)


def _value_text(a: Mapping[str, Any]) -> str:
    value, limit = a.get("value"), a.get("limit")
    if value is None:
        return ""
    return f"{a.get('metric', '')} {value:g}" + (f" (limit {limit:g})" if limit is not None
                                                 else "")


def _probes(probes: Sequence[ProbeView], now: float) -> str:
    rows = []
    for p in probes:
        status = STATUS_NAMES.get(p.status, "-") if p.status is not None else "-"
        rows.append([f"<strong>{e(p.name)}</strong>",
                     _badge(status) if status != "-" else "-",
                     f"<pre>{e(p.note)}</pre>" if p.note else "-",
                     _when(p.at, now)])
    return _table(["Probe", "Status", "Last output", "Checked"], rows, "No probes configured.")


def _sinks(sinks: list[Mapping[str, Any]], now: float) -> str:
    rows = []
    for s in sinks:
        dropped = s.get("dropped")
        n_dropped = sum(dropped.values()) if isinstance(dropped, Mapping) else dropped
        rows.append([f"<strong>{e(s.get('name'))}</strong>", _num(s.get("backlog")),
                     _num(s.get("delivered")), _num(n_dropped),
                     f"<pre>{e(s.get('last_error'))}</pre>" if s.get("last_error") else "-",
                     _when(s.get("last_success"), now)])
    return _table(["Sink", "Backlog", "Delivered", "Dropped", "Last error", "Last success"],
                  rows, "No sinks configured.", num=(1, 2, 3))


def _uplink(pipeline: Mapping[str, Any] | None) -> str:
    if not pipeline:
        return '<p class="none">No uplink configured.</p>'
    rows = []
    for r in pipeline.get("receivers") or []:
        up = "up" if r.get("up") else "down"
        rows.append([f"<strong>{e(r.get('name'))}</strong>", _badge(up),
                     _num(r.get("buffer_samples")), _num(r.get("spill_samples")),
                     e(age(r.get("seconds_since_success"))),
                     f"<pre>{e(r.get('last_error'))}</pre>" if r.get("last_error") else "-"])
    spill = pipeline.get("spill") or {}
    oldest = e(age(spill.get("oldest_age_seconds")))
    extra = (f'<p class="meta">Spill: {_num(spill.get("bytes"))} bytes of samples, '
             f'{_num(spill.get("samples"))} samples, oldest {oldest}</p>') if spill else ""
    return _table(["Receiver", "State", "Buffered", "Spilled", "Since success", "Last error"],
                  rows, "No receivers.", num=(2, 3)) + extra


def _workers(workers: list[Mapping[str, Any]]) -> str:
    rows = [[e(w.get("name")), _badge("ok" if w.get("alive") else "down"),
             _num(w.get("restarts")),
             f"<pre>{e(w.get('last_error'))}</pre>" if w.get("last_error") else "-"]
            for w in workers]
    return _table(["Worker", "Alive", "Restarts", "Last error"], rows, "No workers.", num=(2,))


def _rows(value: Any) -> list[Mapping[str, Any]]:
    return [r for r in value if isinstance(r, Mapping)] if isinstance(value, list) else []


def render_page(state: Mapping[str, Any], probes: Sequence[ProbeView], now: float,
                refresh: float = 10.0) -> str:
    host = state.get("host") or "?"
    alerts_html, firing, pending = _alerts(_rows(state.get("alerts")), now)
    config: Mapping[str, Any] = state.get("config") or {}
    reload: Mapping[str, Any] = state.get("reload") or {}
    title = f"pharosd on {host}: " + (f"{firing} firing" if firing else "all clear")
    if pending:
        title += f", {pending} pending"
    reload_html = ""
    if reload and reload.get("ok") is False:
        errors = "".join(f"<li><code>{e(x)}</code></li>" for x in reload.get("errors") or [])
        reload_html = (f'<p>{_badge("FAILED")} the last reload failed; the previous config '
                       f"runs.</p><ul>{errors}</ul>")
    started = state.get("started_at")
    up = f", up {e(age(now - started))}" if isinstance(started, int | float) else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{int(refresh)}">
<title>{e(title)}</title><style>{_STYLE}</style></head>
<body><header><h1>{e(title)}</h1>
<p class="meta">pharosd {e(state.get("version"))} on {e(host)}, pid {e(state.get("pid"))}{up};
config {e(config.get("source"))}</p>{reload_html}</header>
<section id="alerts"><h2>Alerts: {firing} firing, {pending} pending</h2>{alerts_html}</section>
<section id="probes"><h2>Probes</h2>{_probes(probes, now)}</section>
<section id="sinks"><h2>Sinks</h2>{_sinks(_rows(state.get("sinks")), now)}</section>
<section id="uplink"><h2>Uplink</h2>{_uplink(state.get("pipeline"))}</section>
<section id="workers"><h2>Workers</h2>{_workers(_rows(state.get("workers")))}</section>
<footer><p class="meta">Generated {e(rfc3339(now))}; reloads every {int(refresh)} s.
<a href="/metrics">/metrics</a> · <a href="/api/v1/status">/api/v1/status</a> ·
<a href="/api/v1/alerts">/api/v1/alerts</a></p></footer>
</body></html>
"""


def _hold_text(hold: Any) -> str:
    """What holds an alert back: ``silence 3f2a9c0e1b7d: disk swap`` or ``maintenance patching``."""
    if not isinstance(hold, dict):
        return ""
    kind, ident = str(hold.get("kind", "")), str(hold.get("id", ""))
    if kind == "silence":
        comment = str(hold.get("comment") or "")
        return f"silence {ident[:12]}" + (f": {comment}" if comment else "")
    return f"{kind} {ident}".strip()
