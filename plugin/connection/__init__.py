"""The plugin's access to a GroundSynth backend.

- `api`: a small gRPC client over the plugin's own generated copy of the groundsynth.v1 contract
  (`_generated`, built by scripts/gen_proto.py), so no backend package is needed in QGIS's Python;
- `process`: a backend process started and stopped by the plugin (QProcess).
"""
