"""The request: the job spec (AOI, band mapping, stages, synthesis options), the 7 land-cover classes,
errors that name the field at fault, and seed derivation. The bottom layer: imports nothing else of the package.
"""
