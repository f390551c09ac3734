"""Sample shipping: hot buffer, disk spill and the remote_write uplink.

The package face only names its modules; import from the module that owns
a name. ``worker`` (the ``Pipeline`` facade the daemon wires in and the
``UplinkWorker`` thread), ``config`` (shapes of ``buffer``, ``spill`` and
``uplink``), ``batch`` (packed batches), ``remote_write`` (wire format),
``compression`` (snappy), ``series`` (series ids, stale markers), ``buffer``
(the hot buffer), ``spill`` (the on-disk tier), ``delivery`` (splitting
rejections), ``receiver`` (a receiver's resolved settings), ``transport``
(HTTP, and how a request runs), ``uplink`` (a receiver's lane),
``telemetry`` (the daemon's own "self" source).
"""
