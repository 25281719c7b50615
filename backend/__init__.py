"""GroundSynth backend: gRPC server, job engine, stage engines, reports."""
__version__ = "0.1.0"
API_VERSION = "1.0"
