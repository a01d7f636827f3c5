"""`mobility feeds suggest`: a draft feeds file for a sample payload, with its reasoning.

The suggester reads a payload the way the generic adapter does (JSON, GeoJSON, ArcGIS, CKAN,
CSV with any delimiter and encoding, XML), finds where the records are, and for each mapping key
weighs two kinds of evidence: the field's *name* (words in several languages, split at ``_``,
``.`` and camelCase) and its *values* (unique? numbers? counts that add up with a capacity?
timestamps with or without a zone? coordinates that land in a plausible place?). Every guess is
written as a TOML comment with a confidence and the evidence; when the evidence is weak or points
two ways (two id-like fields, "current" that may be free or occupied, status codes, URLs as ids),
the key is left out and the comment says UNDECIDED, with the candidates. A wrong guess is worse
than none: it gives plausible numbers that are false.
"""

from ingest.suggest.draft import feed_name, render, suggest
from ingest.suggest.evidence import Decision, Suggestion

__all__ = ["Decision", "Suggestion", "feed_name", "render", "suggest"]
