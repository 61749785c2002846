"""Workload servers: every pod's declared ports answered from one thread (see server.py)."""
