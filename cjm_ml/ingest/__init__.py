"""Real dealer data in: sources, mappings, identity and privacy at the edge.

Import from the modules (``cjm_ml.ingest.identity``); this package re-exports nothing.
"""
