"""Acting in the target's view, deciding nothing: path resolution, procfs checks, emulated
operations, launching a target under its filter, kicking it after a daemon crash."""
