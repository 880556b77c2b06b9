"""The command line: thin front ends over the launcher, the daemon and the policy engine."""
