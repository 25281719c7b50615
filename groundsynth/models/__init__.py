"""Neural building blocks shared by the neural engines and trainers.

Nothing here imports torch at package import time; each module that needs it
imports it itself, and only the neural engines import those modules (lazily).
"""
