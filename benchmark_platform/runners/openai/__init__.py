"""The OpenAI-compatible family: measuring a live streaming server.

``protocol`` sends and times one request; ``profiles`` shapes the load (sweeps, SLA search) over trials;
``datasets`` builds what is sent; ``server_metrics`` samples the server's Prometheus counters; ``quality`` flags
results that describe the client or a cache rather than the configuration; ``accuracy`` holds the exact-match tasks;
``runner`` is the ``openai`` runner (launch a server from the framework's template, measure it, stop it).
Nothing here is imported unless a measured run or its results need it: this ``__init__`` imports nothing."""
