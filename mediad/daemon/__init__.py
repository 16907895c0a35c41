"""The daemon: what runs inside `mediad run` besides the command that starts it: the
supervisor's loop and the modules it turns (docs/architecture.md), and the attach
backfill thread.

The names the commands use: `loop.Supervisor`; `mode.RunMode`, `mode.Tally`,
`mode.owner_name`. Imported from their modules, not re-exported here, so that importing
one module of this package does not load them all, the database driver included.
"""
