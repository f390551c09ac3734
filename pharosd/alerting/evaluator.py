"""The evaluator: samples in, alert events out, for every threshold and label set.

Pure and single-threaded (the alerting worker owns one and calls it):
``observe`` feeds samples, ``tick`` advances soak and cool timers about once
a second, ``reconfigure`` applies a reloaded config. Times are passed in:
``now_mono`` for durations, ``now_wall`` for the events' timestamps.

* Samples reach rules through a dict keyed by metric name; label matching is
  cached per label set, so a sample no threshold watches costs one dict miss.
  Plain thresholds (no window, not absent) of one metric that share ``match``,
  ``op`` and the resolved cool form a ``RuleGroup`` (``pharosd.alerting.groups``):
  a sample costs a bisection over their limits plus one step per threshold it
  breaches or whose alert is already open or pending, not one per threshold.
  Within one sample, events come in the order of the thresholds in the config.
* Each label set a rule matches is its own instance (machine state, window).
  At most ``max_instances`` per rule; samples of further label sets are
  refused and counted (``counters()["instances_refused"]``).
* Staleness: an instance that has not reported for ``stale_after`` =
  max(``min_stale``, 10 x cool, 5 x the poll interval of its metric, 5 x its
  last sample gap) is forgotten (in a group, the label set's last sample and gap
  are shared by the group's thresholds: one that lost its instance to staleness
  and gets a sample again before the others are forgotten goes on with the
  shared gap). The poll interval comes from the config: the
  ``every`` of the statistic named by the metric's first part
  (``disk.used_percent`` -> ``disk``), of the probe for ``probe.<name>.*``,
  else the longest ``every`` configured. If
  its alert is open (firing or resolving), a ``resolved`` event saying
  "no data for ..." is emitted first; a pending breach is dropped silently.
  Until then, timers run on the last known observation.
* Each rule is evaluated on its own: an exception in one (a bug, a summary that
  cannot be made) is counted (``rule_errors``), kept for ``drain_errors`` and
  costs no other rule its events. An alert's state advances only together with
  the events of that step.
* ``reconfigure`` keeps the state of every rule whose ``rule_id`` is
  unchanged (pending, firing and resolving alike, windows too) and emits
  ``resolved`` for each open alert of a rule that was removed or changed; a
  changed rule starts again from OK.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from pharosd.alerting.config import AlertDefaults, ThresholdConfig
from pharosd.alerting.instances import (
    GroupKey,
    Instance,
    RuleGroup,
    Slot,
    group_key,
    own_instance,
    slot_order,
    step_order,
)
from pharosd.alerting.machine import Observation, Phase, Transition
from pharosd.alerting.rules import Rule, compile_rules
from pharosd.alerting.snapshot import open_alert, orphan_resolved, read_instances, rule_entry
from pharosd.alerting.summary import summarize
from pharosd.model import NO_LABELS, AlertEvent, Sample
from pharosd.units import format_duration

STATE_VERSION = 1
MIN_STALE = 600.0           # seconds; see the module docstring
GC_EVERY = 60.0             # seconds between scans for forgotten instances
MAX_INSTANCES = 10_000      # label sets per rule (per group of rules)
MAX_ERRORS = 64             # rule failures kept for the worker to log


class Evaluator:
    """Applies thresholds to samples and runs one alert machine per instance."""

    def __init__(self, thresholds: Sequence[ThresholdConfig], defaults: AlertDefaults, host: str,
                 *, min_stale: float = MIN_STALE, max_instances: int = MAX_INSTANCES) -> None:
        self.host = host
        self.min_stale = min_stale
        self.max_instances = max_instances
        self._slots: dict[str, Slot] = {}
        self._index: dict[str, list[Slot | RuleGroup]] = {}
        self._groups: dict[GroupKey, RuleGroup] = {}
        self._busy: set[Slot] = set()              # slots with an instance not in OK
        self._absent: list[Slot] = []
        self._intervals: dict[str, float] = {}
        self._slowest = 0.0
        self._now: tuple[float, float] | None = None
        self._last_gc: float | None = None
        self._counters = {"instances_refused": 0, "instances_forgotten": 0,
                          "stale_resolved": 0, "rule_errors": 0}
        self._errors: deque[tuple[str, str]] = deque(maxlen=MAX_ERRORS)
        self._install(compile_rules(thresholds, defaults), defaults)

    # -- the four verbs ------------------------------------------------------

    def observe(self, samples: Iterable[Sample], now_mono: float,
                now_wall: float) -> list[AlertEvent]:
        """Evaluate ``samples`` (observed at ``now_mono``); the events they cause."""
        self._now = (now_mono, now_wall)
        events: list[AlertEvent] = []
        index = self._index
        for sample in samples:
            entries = index.get(sample.metric)
            if not entries:
                continue
            steps: list[tuple[int, Slot, Instance, Observation | None]] = []
            for entry in entries:
                try:
                    if isinstance(entry, RuleGroup):
                        self._offer_group(entry, sample, now_mono, steps)
                    else:
                        self._offer_slot(entry, sample, now_mono, steps)
                except Exception as e:    # one rule's fault never costs another its events
                    self._rule_failed(entry, e)
            if len(steps) > 1:
                steps.sort(key=step_order)
            for _, slot, inst, obs in steps:
                try:
                    if slot.rule.absent is not None:
                        self._data_back(slot, inst, now_mono, now_wall, events)
                    else:
                        self._step(slot, inst, obs, now_mono, now_wall, events)
                except Exception as e:
                    self._rule_failed(slot, e)
        return events

    def _offer_group(self, group: RuleGroup, sample: Sample, now: float,
                     steps: list[tuple[int, Slot, Instance, Observation | None]]) -> None:
        """Update the label set's series; add a step for each member breached or open."""
        labels = sample.labels
        series, refused = group.sample(labels, now, sample.note, self.max_instances)
        if refused:
            self._counters["instances_refused"] += refused
        if series is None:
            return
        value = sample.value
        hits = group.breached(value)
        if not hits and not series.active:
            return                          # the hot path: every member OK and staying OK
        chosen: dict[int, Slot] = dict(series.active)
        for _, order, slot in hits:
            if slot not in series.forgotten:        # refused: no instance of it
                chosen[order] = slot
        for order, slot in chosen.items():
            inst = slot.instances.get(labels)
            if inst is None:
                inst = Instance(slot.rule, labels, series)
            steps.append((order, slot, inst, slot.rule.observe(value)))

    def _offer_slot(self, slot: Slot, sample: Sample, now: float,
                    steps: list[tuple[int, Slot, Instance, Observation | None]]) -> None:
        """A rule outside any group (windowed or absent): its instance and observation."""
        inst = slot.instances.get(sample.labels)
        if inst is None:
            if not slot.accepts(sample.labels):
                return
            if len(slot.instances) >= self.max_instances:
                self._counters["instances_refused"] += 1
                return
            inst = slot.instances[sample.labels] = own_instance(slot.rule, sample.labels, now)
        else:
            inst.series.gap = now - inst.series.last_seen
            if slot.rule.absent is None:
                inst.series.last_seen = now
        inst.series.note = sample.note
        obs: Observation | None = None
        if slot.rule.absent is None and inst.window is not None:
            inst.window.add(now, sample.value)
            agg = inst.window.value(now)
            obs = None if agg is None else slot.rule.observe(agg)
        steps.append((slot.order, slot, inst, obs))

    def needs_tick(self) -> bool:
        """True while a tick can change something other than forgetting stale series:
        an alert is pending or open, or a rule watches for absent data."""
        return bool(self._busy) or bool(self._absent)

    def tick(self, now_mono: float, now_wall: float) -> list[AlertEvent]:
        """Advance soak and cool timers with no new sample; forget stale instances."""
        self._now = (now_mono, now_wall)
        events: list[AlertEvent] = []
        for slot in sorted(self._busy.union(self._absent), key=slot_order):
            if slot.rule.absent is not None:
                try:
                    self._absent_tick(slot, now_mono, now_wall, events)
                except Exception as e:
                    self._rule_failed(slot, e)
                continue
            for labels in list(slot.active):
                inst = slot.instances[labels]
                try:
                    if now_mono - inst.series.last_seen > self._stale_after(slot, inst):
                        self._forget(slot, inst, now_mono, now_wall, events)
                    else:
                        self._step(slot, inst, None, now_mono, now_wall, events)
                except Exception as e:
                    self._rule_failed(slot, e)
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
        out = [open_alert(slot.rule, slot.instances[labels].state, labels,
                          slot.instances[labels].fingerprint, slot.instances[labels].series.note)
               for slot in self._slots.values() for labels in sorted(slot.active)]
        out.sort(key=lambda a: (a["rule"], sorted(a["labels"].items())))
        return out

    def counters(self) -> dict[str, int]:
        """Instances held and what was refused, forgotten or resolved as stale."""
        c = dict(self._counters)
        c["instances"] = sum(len(s.instances) for s in self._slots.values() if s.group is None)
        c["instances"] += sum(g.instances() for g in self._groups.values())
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
        rules = {rule_id: rule_entry(slot.rule, {labels: slot.instances[labels].state
                                                 for labels in slot.active}, mono)
                 for rule_id, slot in self._slots.items() if slot.active}
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
            for labels, state in read_instances(entry, now_mono):
                if slot is None:
                    if state.open:
                        events.append(orphan_resolved(entry, labels, state, self.host,
                                                      now_wall))
                    continue
                whole = slot.rule.absent is not None and labels == NO_LABELS
                if not (whole or slot.rule.matches_labels(labels)):
                    continue
                group = slot.group
                if group is None:
                    if labels in slot.instances:
                        continue
                    inst = slot.instances[labels] = own_instance(slot.rule, labels, now_mono)
                    if slot.rule.absent is not None:    # missing until it reports
                        inst.series.last_seen = now_mono - slot.rule.absent
                else:
                    series = group.series.get(labels)
                    if series is None:
                        series = group.new_series(labels, now_mono)
                    elif slot not in series.forgotten:
                        continue                # known to the evaluator already
                    group.restore(series, slot)
                    inst = Instance(slot.rule, labels, series)
                inst.state = state
                if state.phase is not Phase.OK:
                    self._mark_active(slot, inst)
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
        slots: dict[str, Slot] = {}
        for rule in rules:
            if rule.rule_id in slots:
                continue
            slot = self._slots.get(rule.rule_id)
            if slot is None:
                slot = Slot(rule)
            else:
                slot.rule = rule        # same behaviour; the summary template may differ
            slots[rule.rule_id] = slot
        kept = set(slots)
        index: dict[str, list[Slot | RuleGroup]] = {}
        groups: dict[GroupKey, RuleGroup] = {}
        for order, slot in enumerate(slots.values()):
            slot.order = order
            key = group_key(slot.rule)
            if key is None:
                slot.group = None
                index.setdefault(slot.rule.metric, []).append(slot)
                continue
            group = groups.get(key)
            if group is None:
                group = groups[key] = RuleGroup(key, slot.rule.matches_labels)
                index.setdefault(slot.rule.metric, []).append(group)
            group.add(slot.rule.nearest, order, slot)
            slot.group = group
        for key, group in groups.items():
            group.finish()
            old = self._groups.get(key)
            if old is not None and any(s.rule.rule_id in kept for s in old.slots):
                group.adopt(old)            # the label sets its kept members saw
        busy: set[Slot] = set()
        for slot in slots.values():
            if slot.active:
                busy.add(slot)
            if slot.group is not None:
                for inst in slot.instances.values():
                    inst.series.active[slot.order] = slot
        self._slots, self._index, self._groups, self._busy = slots, index, groups, busy
        self._absent = [s for s in slots.values() if s.rule.absent is not None]

    def _step(self, slot: Slot, inst: Instance, obs: Observation | None, now: float,
              wall: float, events: list[AlertEvent]) -> None:
        state, transitions = slot.machine.step(inst.state, obs, now, wall)
        # The events first: if one cannot be made, the state does not advance either.
        made = [self._event(slot.rule, inst, t, wall) for t in transitions]
        inst.state = state
        if state.phase is Phase.OK:
            self._mark_ok(slot, inst)
        else:
            self._mark_active(slot, inst)
        events.extend(made)

    def _rule_failed(self, where: Slot | RuleGroup, e: Exception) -> None:
        self._counters["rule_errors"] += 1
        name = (where.rule.name if isinstance(where, Slot)
                else ",".join(sorted({s.rule.name for s in where.slots})))
        self._errors.append((name, f"{type(e).__name__}: {str(e)[:200]}"))

    def drain_errors(self) -> list[tuple[str, str]]:
        """``(rule, error)`` of each rule evaluation that failed since the last call
        (at most ``MAX_ERRORS`` kept; ``counters()["rule_errors"]`` counts them all)."""
        out = list(self._errors)
        self._errors.clear()
        return out

    def _mark_active(self, slot: Slot, inst: Instance) -> None:
        slot.active[inst.labels] = None
        self._busy.add(slot)
        if slot.group is not None:
            slot.instances[inst.labels] = inst
            inst.series.active[slot.order] = slot

    def _mark_ok(self, slot: Slot, inst: Instance) -> None:
        """``inst`` is back in OK (a group member then holds nothing for it)."""
        slot.active.pop(inst.labels, None)
        if not slot.active:
            self._busy.discard(slot)
        if slot.group is not None:
            slot.instances.pop(inst.labels, None)
            inst.series.active.pop(slot.order, None)

    def _event(self, rule: Rule, inst: Instance, t: Transition, wall: float,
               reason: str | None = None) -> AlertEvent:
        try:
            summary = summarize(rule, t, inst.labels, inst.series.note, reason)
        except Exception:       # the event matters more than its wording
            summary = f"{rule.name} {t.status}" + (f": {reason}" if reason else "")
        return AlertEvent(
            status=t.status, rule=rule.name, level=t.level, metric=rule.metric,
            labels=inst.labels, value=t.value, limit=t.limit, op=rule.op, host=self.host,
            started_at=t.started_at, at=wall, summary=summary,
            fingerprint=inst.fingerprint, previous_level=t.previous_level,
        )

    def _data_back(self, slot: Slot, inst: Instance, now: float, wall: float,
                   events: list[AlertEvent]) -> None:
        """Absent rule: a sample arrived for ``inst`` (and so for the rule as a whole)."""
        absent = slot.rule.absent
        assert absent is not None
        slot.seen_any = True
        whole = slot.instances.get(NO_LABELS)
        targets = [inst] if whole is None or whole is inst else [inst, whole]
        for target in targets:
            missing = max(0.0, now - target.series.last_seen)
            target.series.last_seen = now
            self._step(slot, target, Observation(None, missing, absent), now, wall, events)
        if whole is not None and whole is not inst and NO_LABELS not in slot.active:
            del slot.instances[NO_LABELS]   # the rule-as-a-whole alert is over for good

    def _absent_tick(self, slot: Slot, now: float, wall: float,
                     events: list[AlertEvent]) -> None:
        """Absent rule: judge the age of every instance's last sample."""
        rule = slot.rule
        absent = rule.absent
        assert absent is not None
        if slot.since is None:
            slot.since = now
        if not slot.seen_any and not slot.instances and now - slot.since >= absent:
            # Nothing matching since start or reload: the rule as a whole has no data.
            slot.instances[NO_LABELS] = own_instance(rule, NO_LABELS, slot.since)
        level = rule.limits[0][0]
        for inst in list(slot.instances.values()):
            age = now - inst.series.last_seen
            if age >= absent:
                self._step(slot, inst, Observation(level, age, absent), now, wall, events)
            elif inst.labels in slot.active:
                self._step(slot, inst, None, now, wall, events)

    def _forced_resolve(self, slot: Slot, inst: Instance, now: float, wall: float,
                        reason: str) -> AlertEvent:
        s = inst.state
        assert s.level is not None and s.started_at is not None and s.fired_at is not None
        t = Transition("resolved", s.level, None, s.value, s.limit, s.started_at,
                       max(0.0, now - s.fired_at))
        return self._event(slot.rule, inst, t, wall, reason)

    def _stale_after(self, slot: Slot, inst: Instance) -> float:
        rule = slot.rule
        return self._stale_period(rule.metric, rule.cool, inst.series.gap_of(slot))

    def _stale_period(self, metric: str, cool: float, gap: float) -> float:
        return max(self.min_stale, 10.0 * cool, 5.0 * gap, 5.0 * self._interval_of(metric))

    def _interval_of(self, metric: str) -> float:
        """The configured poll interval of ``metric`` (the longest when unknown)."""
        head, _, rest = metric.partition(".")
        key = f"probe.{rest.partition('.')[0]}" if head == "probe" else head
        return self._intervals.get(key, self._slowest)

    def _forget(self, slot: Slot, inst: Instance, now: float, wall: float,
                events: list[AlertEvent]) -> None:
        if inst.state.open:
            reason = f"no data for {format_duration(now - inst.series.last_seen, coarse=True)}"
            events.append(self._forced_resolve(slot, inst, now, wall, reason))
            self._counters["stale_resolved"] += 1
        del slot.instances[inst.labels]
        self._mark_ok(slot, inst)
        if slot.group is not None:
            slot.group.forget(inst.series, slot)
        self._counters["instances_forgotten"] += 1

    def _collect(self, now: float) -> None:
        """Forget OK instances that stopped reporting (open ones go through tick)."""
        for slot in self._slots.values():
            if slot.rule.absent is not None or slot.group is not None:
                continue            # a vanished instance is what an absent rule watches
            stale = [inst for labels, inst in slot.instances.items()
                     if labels not in slot.active
                     and now - inst.series.last_seen > self._stale_after(slot, inst)]
            for inst in stale:
                del slot.instances[inst.labels]
                self._counters["instances_forgotten"] += 1
        for (metric, _, _, cool), group in self._groups.items():
            self._counters["instances_forgotten"] += group.collect(
                now, partial(self._stale_period, metric, cool))

    def _times(self, mono: float | None, wall: float | None) -> tuple[float, float]:
        last = self._now or (0.0, 0.0)
        return (last[0] if mono is None else mono, last[1] if wall is None else wall)
