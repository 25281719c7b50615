"""The job pipeline, along the data's path:

    prepare (validate the spec against the raster and the engines: prepare.py)
      -> real tiles (read, segment, caption, ground, write, record: real_tiles.py)
      -> synthetic tiles (fit, condition, synthesise, re-segment, caption, ground: synthetic_tiles.py)
      -> layers and report (outputs.py)

`runner.run_job` is the short loop over these; `job_run.JobRun` holds a running
job's state and the steps every batch shares. The pipeline emits domain events
(events.py) and records tiles in a JobStore; it builds no transport messages.
"""
