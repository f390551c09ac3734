"""Reading a secret from a file (``password_file``, ``bearer_token_file``, ``token_file`` ...).

``read_secret_file`` returns the file's text with surrounding whitespace
(the trailing newline an editor or ``echo`` leaves) stripped. A file that
cannot be read, or is not UTF-8, is a ``ConfigError`` naming the file and
the key, never the content.
"""

from __future__ import annotations

from pharosd.errors import ConfigError, ConfigIssue

__all__ = ["read_secret_file"]


def read_secret_file(path: str, key: str) -> str:
    """The stripped UTF-8 text of ``path``; ``key`` is the config key path for errors."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        return data.decode("utf-8").strip()
    except OSError as e:
        reason = e.strerror or type(e).__name__
    except UnicodeDecodeError as e:
        reason = f"not UTF-8 text (byte {e.start})"
    raise ConfigError([ConfigIssue(file=str(path), line=0, column=0, path=key,
                                   message=f"cannot read the secret file: {reason}")])
