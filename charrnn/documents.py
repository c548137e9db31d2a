"""Placeholder until the documents reader lands (branch docs-read)."""

END = "\x03"
