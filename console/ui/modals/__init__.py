"""Textual modals of the console."""
