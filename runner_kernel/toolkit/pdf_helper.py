"""``from pdf_helper import save_as_pdf`` — kept for tools written for the system Skriptoteket replaces."""

from skriptoteket_toolkit import save_as_pdf

__all__ = ["save_as_pdf"]
