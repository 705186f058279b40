"""``python -m sentinel_standin``: run the stand-in backend until SIGTERM."""

import sys

from .server import main

sys.exit(main())
