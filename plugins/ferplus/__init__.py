"""Dataset plugin (being written)."""
