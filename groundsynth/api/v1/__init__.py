"""groundsynth.v1: access to the generated code (contract), message conversions, the client.
"""
