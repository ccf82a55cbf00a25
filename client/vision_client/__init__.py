"""The Python client of vision-service (`vision_client.client`) and the `vision` command (`.cli`)."""

from vision_client.client import AsyncClient, Client, VisionError

__all__ = ["AsyncClient", "Client", "VisionError"]
