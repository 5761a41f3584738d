"""asif-qdrant."""
