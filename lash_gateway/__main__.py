"""`python -m lash_gateway` is the `lash-gateway` command."""

import sys

from .admin._cli import main

sys.exit(main())
