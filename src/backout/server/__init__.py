"""``backout server``: a REST API over the same verbs as the CLI, on the same store.

- :mod:`.app` assembles the FastAPI app (:func:`create_app`);
- :mod:`.auth` tells who a request is from its bearer token, and refuses (and audits)
  what its role does not grant;
- :mod:`.problems` answers every error as RFC 9457 problem+json;
- :mod:`.pages` lists runs a page at a time (keyset pagination);
- :mod:`.routes` holds the endpoints: health, runs, actions, events, metrics;
- :mod:`.events` streams journal events live, as Server-Sent Events;
- :mod:`.web` serves the dashboard at ``/`` (:mod:`.web_views` gathers what its pages
  show): the run page and its forms are in :mod:`.web_actions`, the changes, audit trail,
  flags and status pages in :mod:`.web_pages`;
- :mod:`.listen` binds the socket and runs uvicorn until SIGTERM or Ctrl-C.
"""
