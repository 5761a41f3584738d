"""One APIRouter per resource: health (and docs, metrics), queries, anchors, label sets and galleries, tenants."""
