"""`streetorder serve --ray ADDRESS|local`: the same service on a Ray cluster (Ray Serve).

The FastAPI app of `service/http/app.py` is the ingress (`serve_app.py`), on a cluster state (`state.py`) in
place of the one-process one: detection goes to batched detector replicas (`detector_replica.py`), each camera's
frames to the one actor that owns its engine state (`camera_owner.py`), which writes to the one PostgreSQL and,
while the database is away, to its journal on the head node (`journal.py`). A model swap is a desired state
every replica converges on (`rollout.py`). docs/operations.md#on-a-ray-cluster says how to run it.

Nothing outside this package imports Ray: `streetorder serve` without `--ray` never needs it.
"""
