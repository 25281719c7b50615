"""Trainers for the neural engines (segmenter, generator), their datasets, losses and augmentation.
"""
