"""Command groups: each module's `register(app)` attaches its commands; `raictl.cli` calls them."""
