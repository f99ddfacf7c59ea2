"""Tests of the Azure ML (classic) emulator."""
