"""What a job writes: tile GeoTIFFs, VRT mosaics, the tile grid GeoPackage, tile records, and atomic
writes (no half-written file is ever visible).
"""
