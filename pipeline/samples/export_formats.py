"""The formats `samples export --format` writes (a tiny module, so the CLI need not import the exporter)."""

FORMATS = ("yolo", "coco", "cvat", "labelstudio")
