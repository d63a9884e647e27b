"""`maestro doctor`: read a running Maestro (gather.py), judge what was read (checks.py, pure), print it
(render.py); the command itself is command.py."""
