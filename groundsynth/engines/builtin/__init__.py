"""Built-in CPU engines (no weights): spectral and labels segmenters, exemplar synthesiser,
composition captioner and grounder.
"""
