"""The evaluator: samples in, alert events out, for every threshold and label set.

Pure and single-threaded (the alerting worker owns one and calls it):
``observe`` feeds samples, ``tick`` advances soak and cool timers about once
a second, ``reconfigure`` applies a reloaded config. Times are passed in:
``now_mono`` for durations, ``now_wall`` for the events' timestamps.

* Samples reach rules through a dict keyed by metric name; label matching is
  cached per label set, so a sample no threshold watches costs one dict miss.
* Each label set a rule matches is its own instance (machine state, window).
  At most ``max_instances`` per rule; samples of further label sets are
  refused and counted (``counters()["instances_refused"]``).
* Staleness: an instance that has not reported for ``stale_after`` =
  max(``min_stale``, 10 x cool, 5 x the poll interval of its metric, 5 x its
  last sample gap) is forgotten. The poll interval comes from the config: the
  ``every`` of the statistic named by the metric's first part
  (``disk.used_percent`` -> ``disk``), of the probe for ``probe.<name>.*``,
  else the longest ``every`` configured. If
  its alert is open (firing or resolving), a ``resolved`` event saying
  "no data for ..." is emitted first; a pending breach is dropped silently.
  Until then, timers run on the last known observation.
* ``reconfigure`` keeps the state of every rule whose ``rule_id`` is
  unchanged (pending, firing and resolving alike, windows too) and emits
  ``resolved`` for each open alert of a rule that was removed or changed; a
  changed rule starts again from OK.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pharosd.alerting.config import AlertDefaults, ThresholdConfig
from pharosd.alerting.machine import (
    OK_STATE,
    AlertMachine,
    AlertState,
    Observation,
    Phase,
    Transition,
)
from pharosd.alerting.rules import Rule, compile_rules
from pharosd.alerting.snapshot import state_from_dict, state_to_dict
from pharosd.alerting.summary import summarize
from pharosd.alerting.window import Window
from pharosd.model import (
    NO_LABELS,
    AlertEvent,
    Labels,
    Op,
    Sample,
    fingerprint,
    labels_of,
)
from pharosd.units import format_duration

STATE_VERSION = 1
MIN_STALE = 600.0           # seconds; see the module docstring
GC_EVERY = 60.0             # seconds between scans for forgotten instances
MAX_INSTANCES = 10_000      # label sets per rule
_MATCH_CACHE = 4096         # label sets remembered per rule (matching or not)


class _Instance:
    """One alert instance: a rule and one label set. Mutable, owned by one slot."""

    __slots__ = ("fingerprint", "gap", "labels", "last_seen", "note", "state", "window")

    def __init__(self, rule: Rule, labels: Labels, now: float) -> None:
        self.labels = labels
        self.fingerprint = fingerprint(rule.name, labels)
        self.state = OK_STATE
        self.window = (Window(rule.window_over, rule.window_mode or "avg",
                              ahead=rule.window_ahead or 0.0)
                       if rule.window_over is not None else None)
        self.last_seen = now
        self.gap = 0.0
        self.note: str | None = None


class _Slot:
    """A compiled rule with its instances."""

    __slots__ = ("active", "instances", "machine", "match_cache", "rule", "seen_any", "since")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.since: float | None = None     # absent rules: when watching began
        self.seen_any = False               # absent rules: a sample arrived since then
        self.machine = AlertMachine(rule.soak, rule.cool)
        self.instances: dict[Labels, _Instance] = {}
        self.active: set[Labels] = set()            # instances not in OK
        self.match_cache: dict[Labels, bool] = {}

    def accepts(self, labels: Labels) -> bool:
        hit = self.match_cache.get(labels)
        if hit is None:
            if len(self.match_cache) >= _MATCH_CACHE:
                self.match_cache.clear()
            hit = self.match_cache[labels] = self.rule.matches_labels(labels)
        return hit


class Evaluator:
    """Applies thresholds to samples and runs one alert machine per instance."""

    def __init__(self, thresholds: Sequence[ThresholdConfig], defaults: AlertDefaults, host: str,
                 *, min_stale: float = MIN_STALE, max_instances: int = MAX_INSTANCES) -> None:
        self.host = host
        self.min_stale = min_stale
        self.max_instances = max_instances
        self._slots: dict[str, _Slot] = {}
        self._index: dict[str, list[_Slot]] = {}
        self._intervals: dict[str, float] = {}
        self._slowest = 0.0
        self._now: tuple[float, float] | None = None
        self._last_gc: float | None = None
        self._counters = {"instances_refused": 0, "instances_forgotten": 0,
                          "stale_resolved": 0}
        self._install(compile_rules(thresholds, defaults), defaults)

    # -- the four verbs ------------------------------------------------------

    def observe(self, samples: Iterable[Sample], now_mono: float,
                now_wall: float) -> list[AlertEvent]:
        """Evaluate ``samples`` (observed at ``now_mono``); the events they cause."""
        self._now = (now_mono, now_wall)
        events: list[AlertEvent] = []
        index = self._index
        for sample in samples:
            slots = index.get(sample.metric)
            if not slots:
                continue
            for slot in slots:
                inst = slot.instances.get(sample.labels)
                if inst is None:
                    if not slot.accepts(sample.labels):
                        continue
                    if len(slot.instances) >= self.max_instances:
                        self._counters["instances_refused"] += 1
                        continue
                    inst = slot.instances[sample.labels] = _Instance(
                        slot.rule, sample.labels, now_mono)
                else:
                    inst.gap = now_mono - inst.last_seen
                    if slot.rule.absent is None:
                        inst.last_seen = now_mono
                inst.note = sample.note
                obs: Observation | None
                if slot.rule.absent is not None:
                    self._data_back(slot, inst, now_mono, now_wall, events)
                    continue
                if inst.window is not None:
                    inst.window.add(now_mono, sample.value)
                    agg = inst.window.value(now_mono)
                    obs = None if agg is None else slot.rule.observe(agg)
                else:
                    obs = slot.rule.observe(sample.value)
                self._step(slot, inst, obs, now_mono, now_wall, events)
        return events

    def tick(self, now_mono: float, now_wall: float) -> list[AlertEvent]:
        """Advance soak and cool timers with no new sample; forget stale instances."""
        self._now = (now_mono, now_wall)
        events: list[AlertEvent] = []
        for slot in self._slots.values():
            if slot.rule.absent is not None:
                self._absent_tick(slot, now_mono, now_wall, events)
                continue
            for labels in list(slot.active):
                inst = slot.instances[labels]
                if now_mono - inst.last_seen > self._stale_after(slot.rule, inst):
                    self._forget(slot, inst, now_mono, now_wall, events)
                else:
                    self._step(slot, inst, None, now_mono, now_wall, events)
        if self._last_gc is None or now_mono - self._last_gc >= GC_EVERY:
            self._last_gc = now_mono
            self._collect(now_mono)
        return events

    def reconfigure(self, thresholds: Sequence[ThresholdConfig], defaults: AlertDefaults, *,
                    now_mono: float | None = None,
                    now_wall: float | None = None) -> list[AlertEvent]:
        """Apply new thresholds; ``resolved`` for open alerts of removed or changed rules.

        The times default to the last ones the evaluator was given.
        """
        rules = compile_rules(thresholds, defaults)
        mono, wall = self._times(now_mono, now_wall)
        kept = {r.rule_id for r in rules}
        events: list[AlertEvent] = []
        for rule_id, slot in self._slots.items():
            if rule_id in kept:
                continue
            for labels in sorted(slot.active):
                inst = slot.instances[labels]
                if inst.state.open:
                    events.append(self._forced_resolve(slot, inst, mono, wall,
                                                       "threshold removed or changed"))
        self._install(rules, defaults)
        return events

    # -- views -----------------------------------------------------------------

    def open_alerts(self) -> list[dict[str, Any]]:
        """Every instance not in OK, for ``pharosd status``; sorted by rule and labels."""
        out: list[dict[str, Any]] = []
        for slot in self._slots.values():
            for labels in sorted(slot.active):
                inst = slot.instances[labels]
                s = inst.state
                out.append({
                    "rule": slot.rule.name,
                    "metric": slot.rule.metric,
                    "labels": dict(labels),
                    "level": s.level,
                    "status": s.phase.value,
                    "since": s.breach_wall if s.phase is Phase.PENDING else s.started_at,
                    "value": s.value,
                    "limit": s.limit,
                    "fingerprint": inst.fingerprint,
                    "summary": self._open_summary(slot.rule, inst),
                })
        out.sort(key=lambda a: (a["rule"], sorted(a["labels"].items())))
        return out

    @staticmethod
    def _open_summary(rule: Rule, inst: _Instance) -> str | None:
        """What the alert says now (its age is shown beside it, so no "for 5m")."""
        s = inst.state
        if s.level is None:
            return None
        t = Transition("firing", s.level, None, s.value, s.limit,
                       s.started_at if s.started_at is not None else 0.0, 0.0)
        return summarize(rule, t, inst.labels, inst.note)

    def counters(self) -> dict[str, int]:
        """Instances held and what was refused, forgotten or resolved as stale."""
        c = dict(self._counters)
        c["instances"] = sum(len(s.instances) for s in self._slots.values())
        c["active"] = sum(len(s.active) for s in self._slots.values())
        c["window_samples_dropped"] = sum(
            i.window.dropped for s in self._slots.values() for i in s.instances.values()
            if i.window is not None)
        return c

    @property
    def rules(self) -> list[Rule]:
        return [s.rule for s in self._slots.values()]

    # -- state across restarts -------------------------------------------------

    def export_state(self, now_mono: float | None = None) -> dict[str, Any]:
        """The state of every instance not in OK, as JSON-able data keyed by rule_id."""
        mono, _ = self._times(now_mono, None)
        rules: dict[str, Any] = {}
        for rule_id, slot in self._slots.items():
            if not slot.active:
                continue
            rules[rule_id] = {
                "rule": slot.rule.name,
                "metric": slot.rule.metric,
                "op": slot.rule.op,
                "instances": [
                    {"labels": [list(kv) for kv in labels],
                     "state": state_to_dict(slot.instances[labels].state, mono)}
                    for labels in sorted(slot.active)
                ],
            }
        return {"version": STATE_VERSION, "rules": rules}

    def import_state(self, data: Mapping[str, Any], now_mono: float,
                     now_wall: float) -> list[AlertEvent]:
        """Restore ``export_state`` data; ``resolved`` for open alerts of unknown rules.

        Entries that cannot be read are skipped; an instance already known
        to the evaluator is left as it is.
        """
        self._now = (now_mono, now_wall)
        events: list[AlertEvent] = []
        if not isinstance(data, Mapping) or data.get("version") != STATE_VERSION:
            return events
        rules = data.get("rules")
        if not isinstance(rules, Mapping):
            return events
        for rule_id, entry in rules.items():
            slot = self._slots.get(rule_id)
            for labels, state in _read_instances(entry, now_mono):
                if slot is None:
                    if state.open:
                        events.append(self._orphan_resolved(entry, labels, state,
                                                            now_mono, now_wall))
                    continue
                whole = slot.rule.absent is not None and labels == NO_LABELS
                if labels in slot.instances or not (whole or slot.rule.matches_labels(labels)):
                    continue
                inst = slot.instances[labels] = _Instance(slot.rule, labels, now_mono)
                if slot.rule.absent is not None:
                    inst.last_seen = now_mono - slot.rule.absent   # missing until it reports
                inst.state = state
                if state.phase is not Phase.OK:
                    slot.active.add(labels)
        return events

    # -- internals -------------------------------------------------------------

    def _install(self, rules: list[Rule], defaults: AlertDefaults) -> None:
        base = float(defaults.interval)
        intervals: dict[str, float] = {
            str(s.name): float(s.every or base) for s in defaults.statistics}
        for p in defaults.probes:
            intervals[f"probe.{p.name}"] = float(getattr(p, "every", None) or base)
        self._intervals = intervals
        self._slowest = max([base, *intervals.values()])
        slots: dict[str, _Slot] = {}
        for rule in rules:
            if rule.rule_id in slots:
                continue
            slot = self._slots.get(rule.rule_id)
            if slot is None:
                slot = _Slot(rule)
            else:
                slot.rule = rule        # same behaviour; the summary template may differ
            slots[rule.rule_id] = slot
        index: dict[str, list[_Slot]] = {}
        for slot in slots.values():
            index.setdefault(slot.rule.metric, []).append(slot)
        self._slots, self._index = slots, index

    def _step(self, slot: _Slot, inst: _Instance, obs: Observation | None, now: float,
              wall: float, events: list[AlertEvent]) -> None:
        state, transitions = slot.machine.step(inst.state, obs, now, wall)
        inst.state = state
        if state.phase is Phase.OK:
            slot.active.discard(inst.labels)
        else:
            slot.active.add(inst.labels)
        for t in transitions:
            events.append(self._event(slot.rule, inst, t, wall))

    def _event(self, rule: Rule, inst: _Instance, t: Transition, wall: float,
               reason: str | None = None) -> AlertEvent:
        return AlertEvent(
            status=t.status, rule=rule.name, level=t.level, metric=rule.metric,
            labels=inst.labels, value=t.value, limit=t.limit, op=rule.op, host=self.host,
            started_at=t.started_at, at=wall,
            summary=summarize(rule, t, inst.labels, inst.note, reason),
            fingerprint=inst.fingerprint, previous_level=t.previous_level,
        )

    def _data_back(self, slot: _Slot, inst: _Instance, now: float, wall: float,
                   events: list[AlertEvent]) -> None:
        """Absent rule: a sample arrived for ``inst`` (and so for the rule as a whole)."""
        absent = slot.rule.absent
        assert absent is not None
        slot.seen_any = True
        whole = slot.instances.get(NO_LABELS)
        targets = [inst] if whole is None or whole is inst else [inst, whole]
        for target in targets:
            missing = max(0.0, now - target.last_seen)
            target.last_seen = now
            self._step(slot, target, Observation(None, missing, absent), now, wall, events)
        if whole is not None and whole is not inst and NO_LABELS not in slot.active:
            del slot.instances[NO_LABELS]   # the rule-as-a-whole alert is over for good

    def _absent_tick(self, slot: _Slot, now: float, wall: float,
                     events: list[AlertEvent]) -> None:
        """Absent rule: judge the age of every instance's last sample."""
        rule = slot.rule
        absent = rule.absent
        assert absent is not None
        if slot.since is None:
            slot.since = now
        if not slot.seen_any and not slot.instances and now - slot.since >= absent:
            # Nothing matching since start or reload: the rule as a whole has no data.
            whole = slot.instances[NO_LABELS] = _Instance(rule, NO_LABELS, slot.since)
            whole.last_seen = slot.since
        level = rule.limits[0][0]
        for inst in list(slot.instances.values()):
            age = now - inst.last_seen
            if age >= absent:
                self._step(slot, inst, Observation(level, age, absent), now, wall, events)
            elif inst.labels in slot.active:
                self._step(slot, inst, None, now, wall, events)

    def _forced_resolve(self, slot: _Slot, inst: _Instance, now: float, wall: float,
                        reason: str) -> AlertEvent:
        s = inst.state
        assert s.level is not None and s.started_at is not None and s.fired_at is not None
        t = Transition("resolved", s.level, None, s.value, s.limit, s.started_at,
                       max(0.0, now - s.fired_at))
        return self._event(slot.rule, inst, t, wall, reason)

    def _stale_after(self, rule: Rule, inst: _Instance) -> float:
        return max(self.min_stale, 10.0 * rule.cool, 5.0 * inst.gap,
                   5.0 * self._interval_of(rule.metric))

    def _interval_of(self, metric: str) -> float:
        """The configured poll interval of ``metric`` (the longest when unknown)."""
        head, _, rest = metric.partition(".")
        key = f"probe.{rest.partition('.')[0]}" if head == "probe" else head
        return self._intervals.get(key, self._slowest)

    def _forget(self, slot: _Slot, inst: _Instance, now: float, wall: float,
                events: list[AlertEvent]) -> None:
        if inst.state.open:
            reason = f"no data for {format_duration(now - inst.last_seen, coarse=True)}"
            events.append(self._forced_resolve(slot, inst, now, wall, reason))
            self._counters["stale_resolved"] += 1
        del slot.instances[inst.labels]
        slot.active.discard(inst.labels)
        self._counters["instances_forgotten"] += 1

    def _collect(self, now: float) -> None:
        """Forget OK instances that stopped reporting (open ones go through tick)."""
        for slot in self._slots.values():
            if slot.rule.absent is not None:
                continue            # a vanished instance is what an absent rule watches
            stale = [inst for labels, inst in slot.instances.items()
                     if labels not in slot.active
                     and now - inst.last_seen > self._stale_after(slot.rule, inst)]
            for inst in stale:
                del slot.instances[inst.labels]
                self._counters["instances_forgotten"] += 1

    def _times(self, mono: float | None, wall: float | None) -> tuple[float, float]:
        last = self._now or (0.0, 0.0)
        return (last[0] if mono is None else mono, last[1] if wall is None else wall)

    def _orphan_resolved(self, entry: Mapping[str, Any], labels: Labels, state: AlertState,
                         now: float, wall: float) -> AlertEvent:
        name = str(entry.get("rule", "?"))
        op: Op = "below" if entry.get("op") == "below" else "above"
        assert state.level is not None and state.started_at is not None
        return AlertEvent(
            status="resolved", rule=name, level=state.level, metric=str(entry.get("metric", "")),
            labels=labels, value=state.value, limit=state.limit, op=op, host=self.host,
            started_at=state.started_at, at=wall,
            summary=f"{name}: threshold removed while pharosd was down, resolved",
            fingerprint=fingerprint(name, labels),
        )


def _read_instances(entry: Any, now: float) -> list[tuple[Labels, AlertState]]:
    """The readable ``(labels, state)`` pairs of one exported rule entry."""
    out: list[tuple[Labels, AlertState]] = []
    if not isinstance(entry, Mapping):
        return out
    for item in entry.get("instances") or ():
        try:
            labels = labels_of((str(k), str(v)) for k, v in item["labels"])
            out.append((labels, state_from_dict(item["state"], now)))
        except (KeyError, TypeError, ValueError):
            continue
    return out
