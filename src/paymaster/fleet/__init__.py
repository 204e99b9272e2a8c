"""Live fleet management (issue 16): agents, keys and caps changed at run time, kept in the ledger's store.

tables.py   the store's fleet tables (SQLite and Postgres) and their migrations
live.py     `Fleet`: fleet.yaml (the seed) + the run-time changes → the Config the gateway runs on;
            key lookup (rotation grace, revocation), SIGHUP reload, replicas polling for changes
admin.py    the admin endpoints that change it (`paymaster agents …` / `paymaster keys …` call them)
"""
