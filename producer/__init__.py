"""retrainq producer: the enqueue API (``api``), its command-line client (``cli``), the local
stack and demo (``devtools``), and the wire contract they share (``schemas``)."""
