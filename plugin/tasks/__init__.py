"""Work off the main thread: the job task (a QgsTask reading a job's event stream) and short async calls."""
