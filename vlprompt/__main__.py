"""`python -m vlprompt ...` is the `vlprompt` command."""
import sys

from .cli import main

sys.exit(main())
