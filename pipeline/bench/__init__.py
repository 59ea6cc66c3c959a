"""Benchmarks users run, not stages of the flow (`streetorder bench`, `streetorder scenarios`): the backends side
by side (`backends`), the night job against the naive way (`batch`, on `nightclip`'s synthetic night street), the
night job at scale (`python -m pipeline.bench.night_scale`), and the engine's scenario tests on real images
(`scenarios`). `bench serve` is the service's (`service.bench`)."""
