"""`raictl chat`'s core: the RAI API's HTTP client (client.py) and the REPL (repl.py)."""
