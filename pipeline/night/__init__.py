"""The night job at city scale: units of work (a camera's footage, the patrol photos) run in worker processes or
on Ray workers; the parent is the one ledger writer, and records how far each unit got in the same transaction
as the cases, so a killed run resumes where it stopped.

`job` (the night as a whole: `streetorder run`), `report` (the night's HTML report), `units` (what to do),
`messages` (what workers send back), `worker` (runs a unit through the engine), `checkpoint` (a unit's engine state as bytes), `progress` (the ledger's record of how far it got), `writer`
(the single ledger writer), `pool` (local processes) and `ray_pool` (a Ray cluster).
"""
