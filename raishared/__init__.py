"""What raictl and the services both need, and nothing of either side's features.

`settings` (the one Settings object and its fields table), `database` (database URL parsing and
masking, SQLite's file, the driver's error codes and what to do about them), `private_files`
(0600/0700 files and folders for secrets) and `errors` (the hinted error they raise). This package
imports neither `raictl` nor `services` (tests/test_boundary.py proves it, and that `services`
never imports `raictl`); everything at its top level is standard library, since the CLI's
start-up path (`raictl status`) goes through `settings`.
"""
