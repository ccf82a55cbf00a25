"""The inference engine: contract, repository, runtime, batching, imaging and task post-processing.

It imports no web framework (a test enforces it): the HTTP adapters in `service.http`, the benchmarks and the
trainer's evaluation all call it, so every face of the product answers with the same code.
"""
