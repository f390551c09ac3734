"""The HTTP listener family: ``/metrics``, health, the JSON API and the status page.

* ``config``: ``http:`` in pharos.yaml (``HttpConfig``).
* ``store``: the latest value of every series, fed by the collector.
* ``exposition``: the Prometheus text format 0.0.4 (pure).
* ``page``: the HTML status page (pure).
* ``protocol``: HTTP/1.1 request heads and responses (pure).
* ``routes``: which path answers what (pure, over a ``View``).
* ``worker``: the one selector thread that serves it all.
"""

from pharosd.http.config import DEFAULT_PORT, HttpConfig

__all__ = ["DEFAULT_PORT", "HttpConfig"]
