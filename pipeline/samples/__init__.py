"""Samples, the stage between review and train: what the model will learn from. `frame_pool` keeps recent frames
worth labelling (also those that never became cases), `labels` reads a reviewed case's frame with its saved boxes
and the review decision, `classes` is the class list annotators label with and training trains on, and `exchange`
exports reviewed frames as a versioned dataset (YOLO, COCO, CVAT, Label Studio; `export_formats`) and imports a
labelled batch back."""
