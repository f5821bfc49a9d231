"""The 89-feature calculator: spec, numba kernels, the streaming calculator, the pipeline stage
and batch builds — one implementation for training data and the live pipeline."""
