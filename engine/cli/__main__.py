"""``python -m engine.cli``: the same command line as ``payerpolicy``."""

from . import main

main()
