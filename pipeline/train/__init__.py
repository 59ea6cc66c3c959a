"""Training side of streetorder: dataset building, pseudo-labels, night augmentation, training, evaluation.

Only `trainer` and `pseudo_label` need the `train` extra (ultralytics + torch); `evaluate`, `night` and
`classes` run on the serving stack.
"""
