"""Tools for the people who build streetorder, not stages of the flow: serving benchmarks and the engine's
scenario tests on real images."""
