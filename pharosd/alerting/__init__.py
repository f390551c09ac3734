"""Alerting: thresholds, the alert state machine and the evaluator thread.

The package face only names its modules; import from the module that owns
a name. ``config`` (``ThresholdConfig`` and friends), ``rules`` (compiled
thresholds), ``window`` (sliding aggregates), ``machine`` (the pure alert
state machine), ``summary`` (alert texts), ``snapshot`` (saved state),
``evaluator`` (the pure ``Evaluator``: samples in, alert events out) and
``worker`` (``EvaluatorWorker``, the thread that owns the alert state).
"""
