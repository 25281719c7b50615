"""The backend service: gRPC server, job manager, journal, event log, config, security, workspace lock.
"""
