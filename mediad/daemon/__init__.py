"""The daemon: the supervisor's loop and the modules it turns (docs/architecture.md).

The names the commands use: `loop.Supervisor`; `mode.RunMode`, `mode.Tally`,
`mode.owner_name`. Imported from their modules, not re-exported here, so that importing
one pure module of this package (say `mounts`, which the config uses) does not load the
database driver.
"""
