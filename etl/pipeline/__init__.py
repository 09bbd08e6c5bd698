"""The pipeline a page goes through, in stages (after dlt's extract / normalize / load):

    extract.py    fetch pages from the source plug-in (fault points, read-ahead thread)
    transform.py  drift triage, normalization: good items and bad ones with reasons (no database)
    load/         one loader per kind of data (quotes: identity + upsert; articles: mentions +
                  upsert), chosen by the source's kind
    page.py       process_page: everything a page writes, in one transaction; the one path
                  for ingestion, drift replay and quarantine replay
    run.py        a run's lifecycle: claim, Run row, the stages, status, release
    replay.py     drift replay and quarantine replay through the same stages

See docs/architecture.md.
"""
