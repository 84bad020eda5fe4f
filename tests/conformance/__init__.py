"""Conformance of what fhircare writes: the R4 JSON Schema, the guides' rules, the guides' example shapes."""
