"""Measures, as plain functions over arrays: segmentation scores, set metrics of captions and
compositions, and what a caption claims (parsed) about land cover.
"""
