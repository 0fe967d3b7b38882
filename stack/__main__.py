import sys

from stack.cli import from_shell

sys.exit(from_shell())
