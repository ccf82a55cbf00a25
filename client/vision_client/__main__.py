"""`python -m vision_client` is the `vision` command."""

import sys

from vision_client.cli import main

sys.exit(main())
