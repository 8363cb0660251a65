"""Renders the reliability figures (collected by the suite) as RELIABILITY.md."""
