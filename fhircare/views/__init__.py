"""Coordinator questions (read models): worklist, patient summary, care gaps, caseload."""
