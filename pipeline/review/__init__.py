"""Review, the stage between cases and samples: a person looks at a detected case and dispatches it or rejects
it as a false alarm (`decisions`). The review page and its box editor are served by `service/`; what a reviewed
frame is labelled with lives in `pipeline.samples`."""
