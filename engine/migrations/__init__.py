"""The store's schema history (Alembic). ``engine.store`` upgrades a store on open."""
