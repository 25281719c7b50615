"""What a job puts on the map: its layer-tree group and layers (results) and their styles (styling)."""
