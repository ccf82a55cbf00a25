"""`service.client` is `vision_client.client`, the Python client's own distribution (`pip install ./client`).

The module is replaced by that one, so code importing either name gets the same classes.
"""

import sys

try:
    from vision_client import client
except ImportError as missing:
    raise ImportError(
        "the Python client is the vision-service-client distribution: pip install ./client"
    ) from missing

sys.modules[__name__] = client
