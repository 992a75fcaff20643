"""`rnnkit serve`: a local web page where the equations and the hidden states are seen at work (issue 13).

Three views, every label in English and Chinese (a toggle; static/i18n.js):

1. Step through the equations: an RNN / LSTM / GRU with random, tutorial or pasted weights, one time step at
   a time, its diagram with every pre-activation, gate, c_t, h_t and y_t on it and the arithmetic written
   out; then the backward pass, dL/dh_t flowing back step by step (`api.trace_payload`).
2. Gradients vanish: ||dL/dh_t|| for every t of RNN, GRU and LSTM at initialisation, with sliders for T, H,
   the forget-gate bias and the recurrent weight scale (`api.gradient_norms_payload`).
3. Inside a trained model. A language model: text coloured by one hidden unit, the units that track
   quotes, line position and bracket depth, and generation (a poem or acrostic for a poem model) with each
   token's probability (`inside.LoadedModel`); its own gradient norms through time join view 2. A text
   classifier: its running class probability after each token, the words coloured by their effect, and the
   attention weights (`inside_classifier.LoadedClassifier`).

The numbers come from rnnkit.reference (the code behind `rnnkit explain`) and, for a model, from the model
itself; the page (static/: index.html, app.js, i18n.js, style.css; no build step, nothing from a CDN) only
draws them. The server is Python's http.server (`server.py`), bound to 127.0.0.1 by default.

    >>> from rnnkit.serve import make_server          # doctest: +SKIP
    >>> server = make_server(port=0)                  # doctest: +SKIP
    >>> server.serve_forever()                        # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from .api import LIMITS, ApiError, gradient_norms_payload, trace_payload
from .server import STATIC, make_server

__all__ = ["LIMITS", "STATIC", "ApiError", "gradient_norms_payload", "make_server", "serve", "trace_payload"]


def serve(host: str = "127.0.0.1", port: int = 8000, model: str | Path | None = None,
          verbose: bool = False) -> None:
    """Serve the playground until Ctrl-C, printing its address on stdout (nothing is opened)."""
    server = make_server(host, port, model, verbose)
    print(f"rnnkit playground: http://{host}:{server.server_port}/  (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
