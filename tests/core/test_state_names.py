"""One table for every spelling of the TCP states: Linux's numbers and names, ss(8)'s, the RFC's."""

import pytest

from rawtcp.core import State
from rawtcp.core.state_names import LINUX_STATES, rfc_name, rfc_name_of_number, state_from_linux, state_from_name


@pytest.mark.parametrize(("spelling", "state"), [
    ("TCP_SYN_RECV", State.SYN_RECEIVED), ("SYN_RECV", State.SYN_RECEIVED), ("SYN-RECV", State.SYN_RECEIVED),
    ("TCP_NEW_SYN_RECV", State.SYN_RECEIVED), ("SYN_RCVD", State.SYN_RECEIVED), ("syn-received", State.SYN_RECEIVED),
    ("ESTAB", State.ESTABLISHED), ("FIN_WAIT1", State.FIN_WAIT_1), ("FIN-WAIT-2", State.FIN_WAIT_2),
    ("TCP_CLOSE", State.CLOSED), ("CLOSE", State.CLOSED), ("UNCONN", State.CLOSED), ("time-wait", State.TIME_WAIT),
    ("LAST_ACK", State.LAST_ACK), (" LISTEN ", State.LISTEN),
])
def test_every_spelling_reads_as_its_state(spelling, state):
    assert state_from_name(spelling) is state


def test_unknown_spellings_and_numbers_are_none_or_kept():
    assert state_from_name("bogus") is None and rfc_name("bogus") == "bogus"
    assert state_from_linux(13) is None and rfc_name_of_number(13) == "UNKNOWN(13)"


def test_linux_numbers_follow_tcp_states_h():
    numbers = {name: number for name, (number, _state) in LINUX_STATES.items()}
    assert sorted(numbers.values()) == list(range(1, 13))
    assert numbers["TCP_ESTABLISHED"] == 1 and numbers["TCP_CLOSE"] == 7 and numbers["TCP_LISTEN"] == 10
    assert {state for _n, state in LINUX_STATES.values()} == set(State)  # every RFC state has a Linux number
    assert rfc_name_of_number(3) == "SYN-RECEIVED" and rfc_name_of_number(12) == "SYN-RECEIVED"
