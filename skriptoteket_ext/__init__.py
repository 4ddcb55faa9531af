"""Skriptoteket: the JupyterHub-managed service (catalog, versions, review, runs, sessions).

Kept import-free so that pure modules (the contract) can be used without tornado or SQLAlchemy.
"""

__version__ = "0.1.0"
