"""Sessions for each mode, assembled from the same parts: ``backtest``, ``paper``, ``live``.

Each module only chooses parts (source, broker, predictor, commit policy) and hands them to the
core's one ``engine.session.TradingSession``; none has a loop of its own."""
