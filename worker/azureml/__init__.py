"""Typed async clients for the Azure ML Studio (classic) HTTP surfaces."""
