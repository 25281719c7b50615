"""The dock's sections, one module each: backend, input, area, stages, synthesis, run, jobs (results).

Every panel is a collapsible group box with the same two entry points:
- `load(capabilities)`: adapt to what the backend offers (engines, classes, mask strategies);
- `fill(request)`: write its part of the JobRequest (raising a PluginError naming the problem).
Panels talk to the dock through Qt signals only; the dock (plugin/dock.py) wires them.
"""
