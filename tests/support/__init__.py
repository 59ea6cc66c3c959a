"""Helpers the tests share that are not fixtures: starting a real service."""
