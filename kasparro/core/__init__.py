"""The shared floor every app stands on: errors and the API's exception handler, the API base
view and its rate limits, request ids, logging, admin helpers, metrics plumbing, the source
catalogue and API keys. It imports no app of the project (crypto, etl, runs);
tests/test_architecture.py keeps it so."""
