"""The control socket: ``pharosd status`` asks the running daemon for its state.

The package face only names its modules; import from the module that owns
a name. ``protocol`` (socket paths, the JSON-line request and answer,
``ControlError``), ``server`` (``ControlServer``, the ``control`` worker),
``client`` (``query_status``), ``render`` (the human report) and ``cli``
(``pharosd status``).
"""
