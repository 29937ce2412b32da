"""Synthetic text lines: text sources, fonts and their coverage, rendering, corpus generation."""
