"""Operators' admin of the ingestion machinery, one module per concern; importing them
registers their admins (and etl's sections of a run's page):

- checkpoints: reset, rewind;
- quarantine: replay, discard; the run page's quarantined items;
- raw_records: the raw pages;
- sources: leases and source policies;
- drift: drift review and field mappings; the run page's drift events.
"""

from etl.admin import checkpoints, drift, quarantine, raw_records, sources  # noqa: F401
