"""Built-in CPU engines (no weights): spectral and labels segmenters, exemplar and texture synthesisers,
composition captioner and grounder.
"""
