"""Conformance tests of the domain layers (agent memory, media gateway, RuVector facade) on any backend."""
