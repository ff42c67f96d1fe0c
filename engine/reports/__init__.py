"""Renderers: a scrub run as a table, JSON, JSON Lines, HTML or Parquet, written as results arrive;
the denial analysis as an HTML page; the plain-text lines they share."""
