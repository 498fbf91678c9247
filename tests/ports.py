"""A free loopback port, for anything a test starts that listens (the processes of a 2-process run,
an app server). Fixed ports (29500, 7860) would collide when tests run side by side (pytest -n 2)."""

import socket


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
