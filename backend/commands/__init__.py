"""Sub-commands of `python -m backend` (one module each, discovered by backend.__main__)."""
