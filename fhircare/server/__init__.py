"""The embedded FHIR R4 server (SEKMET, from the ``fhircare[server]`` extra), started by fhircare's launcher."""

from .launcher import EmbeddedServer

__all__ = ["EmbeddedServer"]
