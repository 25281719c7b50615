"""Sub-commands of `groundsynth` (one module each, discovered by groundsynth.cli.main)."""
