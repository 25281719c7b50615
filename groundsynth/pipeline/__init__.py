"""The job pipeline: prepare (validate against the raster and engines), real tiles, synthetic tiles,
layers and report, run by a short loop that emits domain events (no transport messages).
"""
