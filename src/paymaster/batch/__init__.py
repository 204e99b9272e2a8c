"""Batch inference: deferred calls and the providers' batch APIs at batch prices (see service.py)."""
