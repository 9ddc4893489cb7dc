"""raictl: run a local LLM chat stack (LLM API + RAI API) and keep it healthy.

Kept empty of imports on purpose: `raictl --help` must stay fast.
"""

__version__ = "0.1.0"
