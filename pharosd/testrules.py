"""``pharosd test-rules FILE...``: read rule-test files, load the configs they name, run.

Each file is read with the config loader (``pharosd.alerting.ruletest`` shapes, every
error positioned as in ``check-config``); its ``config`` (relative to the file, or
``-c`` for every file) is loaded with its drop-ins, and its thresholds, with one
status threshold per probe as the daemon adds them, go to
``pharosd.alerting.rulerun``. A rule name in ``expect`` or ``events`` that the config
does not define is a positioned error too (a typo would otherwise only fail).

Output: one line per test (``PASS``/``FAIL``, the file, the test's name), under a
failed test the time and the expected against the got, and a summary line. Exit 0
when every test of every file passed, 1 when one failed or a file is invalid.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from typing import TextIO

from pharosd.alerting.config import ThresholdConfig
from pharosd.alerting.rulerun import describe, run_test
from pharosd.alerting.ruletest import RuleTestFile
from pharosd.config import load_config
from pharosd.config.document import compose, locate
from pharosd.config.include import read_text
from pharosd.config.loader import parse_as
from pharosd.config.schema import Config
from pharosd.errors import ConfigError, ConfigIssue, describe_error
from pharosd.probes.status import status_thresholds

EXIT_OK, EXIT_FAILED = 0, 1


def run_files(paths: Sequence[str], *, config: str | None, environ: Mapping[str, str],
              out: TextIO, err: TextIO) -> int:
    """Run every test of every file; print the results; the exit status."""
    passed = failed = invalid = 0
    for path in paths:
        try:
            spec, thresholds, cfg = _load(path, config, environ)
        except ConfigError as e:
            for issue in e.issues:
                print(issue, file=err)
            n = len(e.issues)
            print(f"{path}: invalid ({n} error{'s' if n != 1 else ''})", file=err)
            invalid += 1
            continue
        for test in spec.tests:
            try:
                outcome = run_test(test, thresholds, cfg, host=cfg.resolved_host())
                lines = describe(outcome)
            except Exception as e:      # a bug in pharosd: say so, go on with the others
                lines = [f"error: {describe_error(e)} (a bug in pharosd, please report it)"]
            print(f"{'FAIL' if lines else 'PASS'}  {path}: {test.name}", file=out)
            for line in lines:
                print(f"      {line}", file=out)
            if lines:
                failed += 1
            else:
                passed += 1
    summary = f"{passed + failed} tests: {passed} passed, {failed} failed"
    if invalid:
        summary += f"; {invalid} invalid file{'s' if invalid != 1 else ''}"
    print(summary, file=out)
    return EXIT_OK if not failed and not invalid else EXIT_FAILED


def _load(path: str, config: str | None, environ: Mapping[str, str],
          ) -> tuple[RuleTestFile, list[ThresholdConfig], Config]:
    text = read_text(path)
    spec: RuleTestFile = parse_as(RuleTestFile, text, path, environ)
    config_path = config or os.path.join(os.path.dirname(path), spec.config)
    cfg = load_config(config_path, environ=environ).config
    thresholds = [*cfg.thresholds, *status_thresholds(cfg.probes)]
    issues = _unknown_rules(spec, {t.name for t in thresholds}, text, path, config_path)
    if issues:
        raise ConfigError(issues)
    return spec, thresholds, cfg


def _unknown_rules(spec: RuleTestFile, rules: set[str], text: str, path: str,
                   config_path: str) -> list[ConfigIssue]:
    wanted: list[tuple[str, str]] = []
    for i, test in enumerate(spec.tests):
        for j, at in enumerate(test.expect):
            wanted += [(f"tests[{i}].expect[{j}].alerts[{k}].rule", a.rule)
                       for k, a in enumerate(at.alerts)]
        wanted += [(f"tests[{i}].events[{j}].rule", e.rule)
                   for j, e in enumerate(test.events or ())]
    unknown = [(p, name) for p, name in wanted if name not in rules]
    if not unknown:
        return []
    root = compose(text, path)
    assert root is not None
    issues = []
    for field_path, name in unknown:
        close = difflib.get_close_matches(name, sorted(rules), n=1)
        hint = f", did you mean {close[0]!r}?" if close else ""
        mark = locate(root, field_path).start_mark
        issues.append(ConfigIssue(path, mark.line + 1, mark.column + 1, field_path,
                                  f"expected a rule of {config_path}, got {name!r}{hint}"))
    return issues
