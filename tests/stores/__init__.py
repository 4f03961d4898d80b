"""Tests of the event stores: one contract (``contract.py``), one module per adapter."""
