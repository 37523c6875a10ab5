"""RQ jobs and worker entry points."""
