"""Config rules that more than one family's dataclasses apply (pure; no imports of their own).

``command_issues`` is what an external command in the config must be: the
exec probe's plugin and the exec sink's command alike are an argv list whose
program is an absolute path, with no NUL byte in an argument (``execve``
takes C strings: it would fail every run), and an ``env`` of proper variable
names with NUL-free values. Neither an argument nor a value is quoted in a
message: either may come from ``${ENV}`` and be a secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def command_issues(command: Sequence[str], env: Mapping[str, str]) -> list[tuple[str, str]]:
    """Config issues (key, message) of a ``command`` argv and its ``env``."""
    issues: list[tuple[str, str]] = []
    if not command:
        issues.append(("command", "expected a non-empty list: the program and its "
                                  "arguments"))
    elif not command[0].startswith("/"):
        issues.append(("command", "expected an absolute path as the program, got "
                                  f"{command[0]!r}"))
    for i, arg in enumerate(command):
        if "\0" in arg:
            issues.append((f"command[{i}]", "expected no NUL byte (\\0) in an argument"))
    for key, value in env.items():
        if not key or "=" in key or "\0" in key:
            issues.append(("env", f"expected environment variable names, got {key!r}"))
        elif "\0" in value:
            issues.append((f"env.{key}", "expected no NUL byte (\\0) in the value"))
    return issues
