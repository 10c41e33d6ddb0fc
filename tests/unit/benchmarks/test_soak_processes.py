"""How the soak tells PostgreSQL's backends of Dagster run workers from the server's own."""

import os
import socket

from soak import backend_client_port, worker_backends

from openpipe.stack.process import client_ports

# /proc/net/tcp: a run worker's socket (inode 4242) from port 0xC350 = 50000 to 5432
# (0x1538), another process's (inode 7) to 5432, and the worker's socket to Kafka (9092).
_TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:C350 0100007F:1538 01 00000000:00000000 00:00000000 00000000     0        0 4242 1
   1: 0100007F:C351 0100007F:1538 01 00000000:00000000 00:00000000 00000000     0        0 7 1
   2: 0100007F:C352 0100007F:2384 01 00000000:00000000 00:00000000 00000000     0        0 4243 1
"""


def test_the_client_ports_are_those_of_the_workers_sockets_to_postgres():
    assert client_ports([_TCP], {4242, 4243}, 5432) == {50000}
    assert client_ports([_TCP], {7}, 5432) == {50001}
    assert client_ports([_TCP], set(), 5432) == set()


def test_a_backend_title_names_its_clients_port():
    assert backend_client_port("postgres: openpipe openpipe 127.0.0.1(50000) idle") == 50000
    assert backend_client_port("postgres: openpipe dagster [local] idle") is None
    assert backend_client_port("postgres: checkpointer") is None
    assert backend_client_port("/usr/lib/postgresql/15/bin/postgres -D /x") is None


def test_a_live_connection_is_traced_to_its_backend(monkeypatch):
    # This process connects to a listening socket, standing in for a run worker's
    # connection; a fake backend title carries the client port it would show.
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            client_port = client.getsockname()[1]
            titles = {
                101: f"postgres: openpipe openpipe 127.0.0.1({client_port}) idle",
                102: "postgres: openpipe openpipe 127.0.0.1(1) idle",
                103: "postgres: walwriter",
            }
            monkeypatch.setattr("soak.command_line", lambda pid: titles.get(pid, ""))
            assert worker_backends([101, 102, 103], [os.getpid()], port) == [101]
            assert worker_backends([101, 102, 103], [], port) == []
