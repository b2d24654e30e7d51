"""The OpenAI-compatible family: measuring a live streaming server, from the wire up.

``protocol`` sends and times one request (bounded reads, warm-up, HTTP clients); ``trial`` executes one load point
(closed or open loop, over-saturation, client processes); ``measurement`` turns a trial's records into a
``Measurement``; ``goals`` parses latency goals and counts SLO attainment; ``profiles`` chooses the trials (single
loads, sweeps, the SLA search) and combines repeats; ``datasets`` builds what is sent; ``server_metrics`` samples the
server's Prometheus counters; ``accuracy`` holds the exact-match tasks; ``runner`` is the ``openai`` runner (launch a
server from the framework's template, measure it, stop it). This ``__init__`` imports nothing, so reading quality
flags or the catalogs never loads the HTTP client."""
