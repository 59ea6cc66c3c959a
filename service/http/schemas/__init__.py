"""Request and response models of the API, one module per resource, so the OpenAPI schema says exactly what goes
in and out.

Cases are the ledger's own `CaseView`; engine results are translated here (`intake.py`), with evidence as URLs
instead of the engine's local paths.
"""
