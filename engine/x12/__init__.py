"""X12 5010 in and out: 837P claims, 835 remittances, and structural validation with pyx12."""
