"""Snippets of the study pages (common bugs, buggy vs fixed)."""
