"""CMS reference data as versioned, bitemporal tables: NCCI PTP, MUE and add-on edits, the
physician fee schedule's status and global indicators, and the Medicare telehealth list.

- ``layouts``: CMS's published files (text, CSV, Excel, or the zip they come in) -> rows;
- ``tables``: the store's tables for releases and their rows;
- ``releases``: import (atomic, idempotent), list, show and diff;
- ``lookup``: the read side the facts step uses, on a local SQLite file;
- ``linefacts``: the facts each claim line gets from the tables.

A release's rows carry their own effective dates (effective axis); the release's publication
date is when they became known (known axis), as a rule revision's is.
"""
