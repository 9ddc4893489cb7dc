"""Command groups: each module attaches its commands to `raictl.cli.app`."""
