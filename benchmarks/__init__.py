"""fakewatch benchmarks: ``fakewatch bench`` (model-only sweep, end-to-end pipeline, naive baseline).

See docs/benchmarks.md. Entry points: :mod:`benchmarks.cli` (the subcommand), :func:`benchmarks.sweep.run_bench`.
"""
