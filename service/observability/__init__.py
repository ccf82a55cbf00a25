"""Observability split by job: Prometheus metrics, per-request stage timing, and log formatting.

None of it imports a web framework, so the engine records into it; the HTTP gate reads it out.
"""
