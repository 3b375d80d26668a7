"""`ranvier import-synapse`'s storage side: Synapse's database read (source.py), the steps
that turn its rows into Ranvier's (tables.py), and the resumable run (run.py, progress.py).
"""
