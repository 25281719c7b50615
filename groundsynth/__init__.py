"""GroundSynth: segment, synthesise, caption and ground land-cover tiles of an area of interest.

The package follows the data: request -> tiling -> engines -> artefacts -> pipeline -> report/export,
with the service (gRPC server, jobs, journal) and the API (contract, client) around it; see
docs/architecture.md.
"""
__version__ = "0.1.0"
API_VERSION = "1.1"
