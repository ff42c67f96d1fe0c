"""The web workbench: sign-in, scrub (more pages to come), served by ``payerpolicy serve`` and ``payerpolicy ui``."""
