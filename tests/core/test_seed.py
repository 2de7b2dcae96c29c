"""SEED.md's ten segments, produced by two cores talking to each other."""

from rawtcp.core import DataReceived, PeerClosed, State

from .helpers import EndpointPair, Want, shape

CLIENT_DATA = b"C" * 20
SERVER_DATA = b"S" * 10


def step(pair: EndpointPair) -> dict[str, list]:
    """Pull both sides once, deliver, and return what each side put on the wire."""
    pair.pull()
    sent = {name: list(q) for name, q in pair.queues.items()}
    pair.deliver()
    return sent


def only(sent: dict[str, list], src: str):
    other = "b" if src == "a" else "a"
    assert sent[other] == [], f"unexpected segments from {other}: {[s.summary() for s in sent[other]]}"
    assert len(sent[src]) == 1, [s.summary() for s in sent[src]]
    return sent[src][0]


def test_seed_exchange_segment_by_segment():
    pair = EndpointPair.client_server(client={"mss": 1460, "msl2": 2.0}, server={"mss": 1024})
    client, server = pair.a, pair.b

    # 1: client SYN seq 1000, announces its MSS
    s1 = only(step(pair), "a")
    assert Want("S", 1000).matches(s1) and s1.mss == 1460
    assert client.state is State.SYN_SENT and server.state is State.SYN_RECEIVED
    # 2: server SYN,ACK seq 8000 ack 1001, MSS 1024
    s2 = only(step(pair), "b")
    assert Want("S.", 8000, 1001).matches(s2) and s2.mss == 1024
    assert client.state is State.ESTABLISHED and client.send_mss == 1024
    # 3: client ACK 1001/8001
    s3 = only(step(pair), "a")
    assert shape(s3) == (".", 1001, 8001, 0)
    assert server.state is State.ESTABLISHED

    # 4: client 20 bytes, PSH
    assert client.send(CLIENT_DATA, pair.t) == 20
    s4 = only(step(pair), "a")
    assert shape(s4) == ("P.", 1001, 8001, 20)
    # 5: the server answers with 10 bytes riding on the ACK of 1001-1020 (its app writes before the pull)
    assert pair.received["b"] == CLIENT_DATA
    assert server.send(SERVER_DATA, pair.t) == 10
    s5 = only(step(pair), "b")
    assert shape(s5) == ("P.", 8001, 1021, 10)
    # 6: client ACKs 8001-8010
    s6 = only(step(pair), "a")
    assert shape(s6) == (".", 1021, 8011, 0)
    assert pair.received["a"] == SERVER_DATA

    # 7: client FIN
    client.close(pair.t)
    assert client.state is State.FIN_WAIT_1
    s7 = only(step(pair), "a")
    assert shape(s7) == ("F.", 1021, 8011, 0)
    assert server.state is State.CLOSE_WAIT and server.peer_fin
    # 8: server ACKs the FIN, half-closed
    s8 = only(step(pair), "b")
    assert shape(s8) == (".", 8011, 1022, 0)
    assert client.state is State.FIN_WAIT_2
    # 9: server FIN
    server.close(pair.t)
    assert server.state is State.LAST_ACK
    s9 = only(step(pair), "b")
    assert shape(s9) == ("F.", 8011, 1022, 0)
    assert client.state is State.TIME_WAIT
    # 10: client's last ACK; server CLOSED, client waits 2MSL
    s10 = only(step(pair), "a")
    assert shape(s10) == (".", 1022, 8012, 0)
    assert server.state is State.CLOSED

    assert [str(s) for s in _states(client)] == [
        "CLOSED", "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    assert [str(s) for s in _states(server)] == [
        "CLOSED", "LISTEN", "SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    assert client.next_timer() == pair.t + 2.0
    pair.run(until=pair.t + 2.0)
    assert client.state is State.CLOSED
    assert client.retransmits == server.retransmits == 0

    events = []
    while (e := client.next_event()) is not None:
        events.append(e)
    assert any(isinstance(e, DataReceived) and e.nbytes == 10 for e in events)
    assert any(isinstance(e, PeerClosed) for e in events)


def _states(ep):
    return [ep.trace[0].old] + [c.new for c in ep.trace]
