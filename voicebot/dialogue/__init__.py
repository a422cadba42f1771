"""Dialogue core: transcript -> sentiment -> intent -> knowledge graph -> reply sentences."""
