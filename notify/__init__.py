"""Notifiers: adapters that deliver the engine's alerts (``engine.ports.Alerts``) somewhere a
person sees them. Beside ``brokers`` in the layers: they implement a core port."""
