"""The plugin's access to a GroundSynth backend: its own generated copy of the groundsynth.v1 contract
(`_generated`, built by scripts/gen_proto.py), so no backend package is needed in QGIS's Python."""
