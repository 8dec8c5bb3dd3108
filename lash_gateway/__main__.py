"""`python -m lash_gateway` is the `lash-gateway` command."""

import sys

from ._cli import main

sys.exit(main())
