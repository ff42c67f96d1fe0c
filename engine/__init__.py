"""payerpolicy: a bitemporal payer-policy rules engine for professional claims.

Flow, one direction only: parse (claims) -> facts -> rules -> findings -> report.
Payer knowledge lives in the policy tree, never in this package.
"""

__version__ = "0.1.0"
