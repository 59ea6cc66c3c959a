"""The one database: its engine and transactions, its tables by owner, and the migrations that create them.

Modules, each for one job: `urls` (database URLs), `engine` (engine, sessions, Alembic on open), `storage` (is
the storage writable; `StorageError`), `tables/` (every table, one module per owner), `migrations/` (Alembic),
and the small stores of the durable intake's tables: `frame_marks` (per-camera frame order) and `quarantine`
(reports the ledger refused). The ledger's own logic is `pipeline.cases`; the night job's progress is
`pipeline.night.progress`; API keys are `service.http.keys`.
"""
