"""From a request to tiles: the tile grid over the AOI, the source raster with its band mapping and the
job's radiometric stretch, and label rasters cut to a tile.
"""
