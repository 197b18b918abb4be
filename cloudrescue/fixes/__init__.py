"""Canned fixes applied to a mounted guest."""
