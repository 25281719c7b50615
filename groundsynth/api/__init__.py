"""The versioned contract with clients: generated groundsynth.v1 code, conversions, the Python client.
"""
