"""Benchmarks: the in-process limit, this service, a naive Keras service and a framework peer side by side."""
