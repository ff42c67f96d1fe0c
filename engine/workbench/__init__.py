"""The web workbench: sign-in, scrub, suggest, denials, what-if, runs and the policy explorer, served by
``payerpolicy serve`` and ``payerpolicy ui``."""
