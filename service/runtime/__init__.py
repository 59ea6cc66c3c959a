"""The service's inference runtime, with no HTTP in it: the model slot, the micro-batcher and the image memory
budget, the camera config, the live intake into the ledger, and the state that composes them."""
