"""The container's HEALTHCHECK: exit 0 when Ranvier's GET /health answers 200.

RANVIER_HEALTH_URL says where (default http://127.0.0.1:8008/health, the generated
config's listener); set it when your homeserver.yaml listens elsewhere.
"""

import os
import sys
import urllib.request

URL = os.environ.get("RANVIER_HEALTH_URL", "http://127.0.0.1:8008/health")

try:
    with urllib.request.urlopen(URL, timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError as exc:
    print(f"{URL}: {exc}", file=sys.stderr)
    sys.exit(1)
