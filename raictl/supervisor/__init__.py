"""The supervisor: services as data, process identity, the watch loop, ports and probes.

Map of the package (each module's docstring says more):

- `spec`      ServiceSpec and the services of a Settings (two built-ins + `[services.NAME]` tables)
- `probes`    listen / health probes and the owner of a taken port (reused by `raictl doctor`)
- `identity`  "is this process ours?": pid + create time + run marker; exit decoding
- `state`     `<home>/state.json` (what runs) and `<home>/desired.json` (what should), atomic writes
- `status`    `service_statuses(settings)`: the truth about each service, for status and doctor
- `logs`      `<home>/logs/NAME.log`: rotation, tails, follow
- `process`   spawning a child and stopping it (group TERM, grace, KILL, sweep by marker)
- `watch`     the watch loop (detached supervisor process, or `--foreground`)
- `control`   what the commands call: up (pre-flight, start, wait ready), down, restart

Everything here returns values and prints nothing; `raictl/render.py` does the printing.
Only the standard library and psutil are imported at module level.
"""
