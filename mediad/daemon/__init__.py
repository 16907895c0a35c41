"""The daemon: what runs inside `mediad run` besides the command that starts it."""
