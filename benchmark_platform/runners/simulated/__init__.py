"""The simulated family: roofline step costs (``roofline``), a continuous-batching serving simulation over them
(``serving_sim``) and the runner that turns a simulated replica into a ``Measurement`` labelled simulated
(``runner``). Pure: no network, no GPU."""
