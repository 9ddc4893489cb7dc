"""The built-in checks, one module per area; importing this package registers them in display order."""

from raictl.doctor.checks import (  # noqa: F401 - imported for their @check registrations
    config, host, imports, services, wiring, llm, llm_openai, database, e2e, logs,
)
