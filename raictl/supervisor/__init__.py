"""The supervisor: services as data, process identity, the watch loop, ports and probes.

Map of the package (each module's docstring says more):

- `spec`      ServiceSpec and the services of a Settings (two built-ins + `[services.NAME]` tables)
- `probes`    listen / health probes and the owner of a taken port (reused by `raictl doctor`)
- `identity`  "is this process ours?": pid + create time + run marker; exit decoding
- `states`    the service states (`running`, `backoff`, ...), their groups and allowed transitions
- `state`     `<home>/state.json` (`ServiceRecord`s: what runs) and `<home>/desired.json`
              (`DesiredEntry`s: what should), atomic writes
- `status`    `service_statuses(settings)`: the truth about each service, for status and doctor
- `logs`      `<home>/logs/NAME.log`: rotation, tails, follow
- `process`   spawning a child and stopping it (group TERM, grace, KILL, sweep by marker)
- `watch`     the watch loop (detached supervisor process, or `--foreground`)
- `preflight` every reason `up` would fail (ports, folders, programs, imports), before anything changes
- `daemon`    the watch loop started as a daemon, and waiting until it is on record
- `launch`    up and restart: pre-flight, hand the work to the loop, wait until ready
- `shutdown`  down: through the live supervisor, or by itself from state.json
- `foreground` `up --foreground`: the same loop in the terminal
- `control`   what the commands call, re-exported from the five above

Everything here returns values and prints nothing; `raictl/render.py` does the printing.
Only the standard library and psutil are imported at module level.
"""
