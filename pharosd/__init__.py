"""pharosd: a monitoring daemon for Linux hosts.

The package owns nothing at import time: no threads, no logging set-up, no
globals. ``pharosd.cli`` is the entry point; ``pharosd.daemon`` wires the
workers together.
"""

__version__ = "0.1.0"
