"""The benchmarks `make bench` runs (run from the repository root: `python -m benchmarks.bench`), and
the generated claims they and the tests share. Not part of the installed package."""
