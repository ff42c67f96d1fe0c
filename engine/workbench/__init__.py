"""The web workbench: sign-in, scrub, suggest, denials and the policy explorer, served by
``payerpolicy serve`` and ``payerpolicy ui``."""
