"""Training side of streetorder: dataset building, pseudo-labels, night augmentation, training, evaluation.

Only `trainer` and `pseudo_label` need the `train` extra (ultralytics + torch); `evaluate` and `night` run on the
serving stack. The class list and the reviewed samples it trains on come from `pipeline.samples`.
"""
