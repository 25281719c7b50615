"""Training-set export of a finished job.
"""
