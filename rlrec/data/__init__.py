"""Catalogs of items (ids, texts, LM embeddings, metadata) and real interaction data."""

from rlrec.data.builtin import BUILTIN_CATALOGS, load_catalog, load_ggplot2movies, load_movielens, movielens_tables
from rlrec.data.catalog import Catalog, CatalogError, Projection, read_table

__all__ = [
    "BUILTIN_CATALOGS",
    "Catalog",
    "CatalogError",
    "Projection",
    "load_catalog",
    "load_ggplot2movies",
    "load_movielens",
    "movielens_tables",
    "read_table",
]
