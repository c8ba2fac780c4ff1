"""fakewatch benchmarks: ``fakewatch bench`` (model-only sweep, end-to-end pipeline, naive baseline).

See docs/benchmarks.md. Entry points: :mod:`fakewatch.benchmarks.cli` (the subcommand),
:func:`fakewatch.benchmarks.sweep.run_bench`.
"""
