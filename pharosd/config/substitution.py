"""``${NAME}`` substitution in config values, and which keys hold secrets.

``${NAME}``, ``${NAME:-default}`` (default when unset or empty) and ``$$`` (a
literal ``$``) are expanded in every value scalar before conversion;
``looks_secret(path)`` tells the loader to show a value as ``<redacted>``
in error messages (a ``*_file`` key holds a path, not a secret).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_SECRET_WORDS = ("token", "secret", "password", "passwd", "key", "auth", "credential")
_REF = re.compile(r"\$(?:(\$)|\{([^}]*)\}|(\{))")
_REF_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


def substitute(text: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """Expand ``${NAME}``, ``${NAME:-default}`` and ``$$``; return the text and the errors."""
    errors: list[str] = []

    def expand(m: re.Match[str]) -> str:
        if m[1]:
            return "$"
        if m[3]:
            errors.append("unterminated '${' (expected ${NAME} or ${NAME:-default})")
            return ""
        body = _REF_BODY.fullmatch(m[2])
        if body is None:
            errors.append(f"invalid reference '${{{m[2]}}}' "
                          "(expected ${NAME} or ${NAME:-default})")
            return ""
        name, default = body[1], body[2]
        value = environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                errors.append(f"environment variable {name} is not set")
                return ""
            return default
        return value

    return _REF.sub(expand, text), errors


def looks_secret(path: str) -> bool:
    last = path.rsplit(".", 1)[-1].split("[", 1)[0].lower()
    if last.endswith("_file"):      # a path to a secret (token_file, key_file) is no secret
        return False
    return any(word in last for word in _SECRET_WORDS)
