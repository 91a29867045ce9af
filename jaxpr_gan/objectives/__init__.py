"""Objectives: how each family composes its losses (see base.py for the protocol)."""
