"""Loaders that turn real logs into the impression table (IMPRESSION_SCHEMA).

Formats: ``jdsearch`` (:func:`load_jdsearch`), ``aliexpress`` (:func:`load_aliexpress`),
``kuaisar`` (:func:`load_kuaisar`), ``generic`` CSV/Parquet (:func:`load_generic`).
Each module's docstring says how the format's fields map to the table.
"""
from usr.data.loaders.aliexpress import load_aliexpress
from usr.data.loaders.generic import load_generic
from usr.data.loaders.jdsearch import load_jdsearch
from usr.data.loaders.kuaisar import load_kuaisar

FORMATS = ("jdsearch", "aliexpress", "kuaisar", "generic")

__all__ = ["FORMATS", "load_aliexpress", "load_generic", "load_jdsearch", "load_kuaisar"]
