"""Walk-forward studies: plan folds, train per fold (seeds as an ensemble), backtest each fold
out of sample through the same event replay as ``trader backtest``, stitch the out-of-sample
curve, store it all — sequentially in this process or as Ray tasks (``app.study.executors``)."""
