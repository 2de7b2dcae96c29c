"""The executor's system calls on loopback sockets, without root: results, errnos, the fd table and
packetdrill's wording for every mismatch."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest
from test_syscalls_support import call, connected_pair, loopback, ok

from rawtcp.script.syscalls import SUPPORTED, CallScriptError, Executor


@pytest.fixture
def ex() -> Iterator[Executor]:
    executor = loopback()
    yield executor
    executor.close_all()


def test_supported_names_all_have_a_method() -> None:
    for name in SUPPORTED:
        assert callable(getattr(Executor, f"_do_{name}", None)), name
    for name in ("sendto", "sendmsg", "recvmsg", "recvfrom", "epoll_create", "epoll_ctl", "epoll_wait", "pipe",
                 "splice", "open", "sendfile", "getsockname", "getpeername"):
        assert name in SUPPORTED


def test_result_and_errno_wording(ex: Executor) -> None:
    out = call(ex, "close(9) = 0")
    assert out.error == "Expected result 0 but got -1 with errno 9 (Bad file descriptor)"
    ok(ex, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")
    out = call(ex, "shutdown(3, SHUT_WR) = -1 EPIPE (Broken pipe)")
    assert out.error == "Expected errno 32 (Broken pipe) but got 107 (Transport endpoint is not connected)"
    out = call(ex, "listen(3, 1) = -1 EINVAL (Invalid argument)")
    assert out.error == "Expected result -1 but got 0"
    # socket() checks like packetdrill's CHECK_FD: a failure when success was expected
    out = call(ex, "socket(..., 12345, IPPROTO_TCP) = 5")
    assert out.error is not None and out.error.startswith("Expected non-negative result but got -1 with errno")


def test_script_fd_table_rejects_duplicates_and_closes_unwanted_descriptors(ex: Executor) -> None:
    ok(ex, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")
    out = call(ex, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")
    assert out.error == "duplicate fd 3 in script"
    assert list(ex.fds) == [3]
    before = len(os.listdir("/proc/self/fd"))
    out = call(ex, "socket(..., SOCK_STREAM, IPPROTO_TCP) = -1")  # succeeds: the script is wrong
    assert out.error is not None and out.error.startswith("Expected result -1 but got")
    assert len(os.listdir("/proc/self/fd")) == before  # and the live socket was not leaked


def test_sendto_recvfrom_and_null_buffers(ex: Executor) -> None:
    peer = connected_pair(ex)
    with peer:
        ok(ex, "sendto(4, ..., 1000, 0, ..., ...) = 1000")
        time.sleep(0.02)
        assert len(peer.recv(4096)) == 1000
        peer.sendall(b"y" * 10)
        time.sleep(0.02)
        # a NULL buffer reaches the kernel as NULL (packetdrill's buffer_arg()): EFAULT, data left queued
        for line in ("write(4, NULL, 1000)", "send(4, NULL, 1000, 0)", "sendto(4, NULL, 1000, 0, ..., ...)",
                     "read(4, NULL, 1000)", "recv(4, NULL, 1000, 0)", "recvfrom(4, NULL, 1000, 0, ..., ...)"):
            assert ok(ex, f"{line} = -1 EFAULT (Bad address)").err == 14
        ok(ex, "recvfrom(4, ..., 100, 0, ..., ...) = 10")
        with pytest.raises(CallScriptError, match="Expected 6 args but got 4"):
            call(ex, "sendto(4, ..., 10, 0) = 10")


def test_sendmsg_iovecs_and_flags(ex: Executor) -> None:
    peer = connected_pair(ex)
    with peer:
        ok(ex, "sendmsg(4, {msg_name(...)=..., msg_iov(4)=[{..., 0}, {..., 40}, {..., 0}, {..., 20}], "
               "msg_flags=0}, MSG_MORE) = 60")
        ok(ex, "sendmsg(4, {msg_name(...)=..., msg_iov(1)=[{iov_base=..., iov_len=7}], msg_flags=0}, 0) = 7")
        time.sleep(0.05)
        assert len(peer.recv(4096)) == 67
        with pytest.raises(CallScriptError, match="msg_iovlen 2 does not match 1-element iovec array"):
            call(ex, "sendmsg(4, {msg_name(...)=..., msg_iov(2)=[{..., 1}], msg_flags=0}, 0) = 1")
        with pytest.raises(CallScriptError, match="sendmsg ignores msg_flags field in msghdr"):
            call(ex, "sendmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 1}], msg_flags=MSG_EOR}, 0) = 1")


def test_recvmsg_checks_msg_flags(ex: Executor) -> None:
    peer = connected_pair(ex)
    with peer:
        peer.sendall(b"a" * 100)
        time.sleep(0.02)
        ok(ex, "recvmsg(4, {msg_name(...)=..., msg_iov(2)=[{..., 30}, {..., 20}], msg_flags=0}, 0) = 50")
        out = call(ex, "recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 10}], msg_flags=MSG_EOR}, 0) = 10")
        assert out.error == "Expected msg_flags 0x00000080 but got 0x00000000"


def test_getsockopt_and_setsockopt_shapes(ex: Executor) -> None:
    peer = connected_pair(ex)
    with peer:
        ok(ex, "setsockopt(4, SOL_TCP, TCP_NODELAY, [1], 4) = 0")
        ok(ex, "getsockopt(4, SOL_TCP, TCP_NODELAY, [1], [4]) = 0")
        out = call(ex, "getsockopt(4, SOL_TCP, TCP_CORK, [1], [4]) = 0")
        assert out.error == "Bad getsockopt optval: expected: 1 actual: 0"
        out = call(ex, "getsockopt(4, SOL_TCP, TCP_NODELAY, [1], [8]) = 0")
        assert out.error == "Bad getsockopt optlen: expected: 8 actual: 4"
        ok(ex, 'setsockopt(4, SOL_TCP, TCP_CONGESTION, "reno", 5) = 0')
        ok(ex, 'getsockopt(4, SOL_TCP, TCP_CONGESTION, "reno", [4]) = 0')
        out = call(ex, 'getsockopt(4, SOL_TCP, TCP_CONGESTION, "cubi", [4]) = 0')
        assert out.error == "Bad getsockopt optval: expected: 'cubi' actual: 'reno'"
        ok(ex, "setsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=7}, 8) = 0")
        assert ex.socks[4].getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8) == (1).to_bytes(4, "little") + \
            (7).to_bytes(4, "little")
        ok(ex, "setsockopt(4, SOL_IP, IP_TOS, [4], 1) = 0")  # optlen 1: one byte of the int
        assert ex.socks[4].getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == 4
        ok(ex, "setsockopt(4, SOL_TCP, TCP_USER_TIMEOUT, [3000], 4) = 0")
        ok(ex, "getsockopt(4, SOL_TCP, TCP_USER_TIMEOUT, [3000], [4]) = 0")
        ok(ex, "setsockopt(4, SOL_TCP, TCP_NOTSENT_LOWAT, [4000], 4) = 0")
        ok(ex, "getsockopt(4, SOL_TCP, TCP_NOTSENT_LOWAT, [4000], [4]) = 0")
        ok(ex, 'setsockopt(4, SOL_TCP, TCP_FASTOPEN_KEY, "", 3) = -1 EINVAL (Invalid argument)')
        ok(ex, "setsockopt(4, SOL_TCP, TCP_INQ, [1], 4) = 0")
        with pytest.raises(CallScriptError, match="Expected \\[<element>\\] but got multiple elements"):
            call(ex, "setsockopt(4, SOL_TCP, TCP_NODELAY, [1, 2], 4) = 0")
        with pytest.raises(CallScriptError, match="unknown symbol 'TCP_NO_SUCH'"):
            call(ex, "setsockopt(4, SOL_TCP, TCP_NO_SUCH, [1], 4) = 0")


def test_ioctl_queues(ex: Executor) -> None:
    peer = connected_pair(ex)
    with peer:
        ok(ex, "ioctl(4, SIOCINQ, [0]) = 0")
        peer.sendall(b"q" * 1000)
        time.sleep(0.02)
        ok(ex, "ioctl(4, SIOCINQ, [1000]) = 0")
        out = call(ex, "ioctl(4, FIONREAD, [5]) = 0")
        assert out.error == "Bad ioctl optval: expected: 5 actual: 1000"
        ok(ex, "ioctl(4, SIOCOUTQ, [0]) = 0")
        ok(ex, "ioctl(4, SIOCOUTQNSD, [0]) = 0")


def test_poll_revents_wording(ex: Executor) -> None:
    peer = connected_pair(ex)
    with peer:
        ok(ex, "poll([{fd=4, events=POLLIN|POLLOUT, revents=POLLOUT}], 1, 0) = 1")
        out = call(ex, "poll([{fd=4, events=POLLIN|POLLOUT, revents=POLLIN|POLLOUT}], 1, 0) = 1")
        assert out.error == "Expected revents of POLLIN|POLLOUT but got POLLOUT for pollfd 0"
        with pytest.raises(CallScriptError, match="nfds 2 does not match 1-element pollfd array"):
            call(ex, "poll([{fd=4, events=POLLIN}], 2, 0) = 0")


def test_epoll_edge_triggered(ex: Executor) -> None:
    peer = connected_pair(ex)
    with peer:
        ok(ex, "epoll_create(1) = 5")
        assert ex.fds[5].kind == "epoll"
        ok(ex, "epoll_ctl(5, EPOLL_CTL_ADD, 4, {events=EPOLLOUT|EPOLLIN|EPOLLET, fd=4}) = 0")
        ok(ex, "epoll_wait(5, {events=EPOLLOUT, fd=4}, 1, 0) = 1")
        ok(ex, "epoll_wait(5, {events=0, ptr=0}, 1, 0) = 0")  # edge-triggered: nothing new
        peer.sendall(b"e" * 10)
        time.sleep(0.02)
        ok(ex, "epoll_wait(5, {events=EPOLLIN|EPOLLOUT, fd=4}, 1, 0) = 1")
        # packetdrill compares the first event even when none came: a zeroed one
        out = call(ex, "epoll_wait(5, {events=EPOLLIN, fd=4}, 1, 0) = 0")
        assert out.error == "epoll_event->events does not match script: expected: 0x1 actual: 0x0"
        ok(ex, "epoll_ctl(5, EPOLL_CTL_MOD, 4, {events=EPOLLIN, u64=77}) = 0")
        ok(ex, "epoll_wait(5, {events=EPOLLIN, u64=77}, 1, 0) = 1")
        out = call(ex, "epoll_wait(5, {events=EPOLLIN, u64=78}, 1, 0) = 1")
        assert out.error == "epoll_event->data does not match script: expected: 78 actual: 77"
        out = call(ex, "epoll_wait(5, {events=EPOLLOUT, u64=77}, 1, 0) = 1")
        assert out.error == "epoll_event->events does not match script: expected: 0x4 actual: 0x1"
        with pytest.raises(CallScriptError, match="wrong fd specified in epoll_event"):
            call(ex, "epoll_ctl(5, EPOLL_CTL_MOD, 4, {events=EPOLLIN, fd=3}) = 0")
        ok(ex, "epoll_create(0) = -1 EINVAL (Invalid argument)")
        ok(ex, "close(5) = 0")


def test_pipe_and_splice(ex: Executor) -> None:
    peer = connected_pair(ex)
    with peer:
        ok(ex, "pipe([5, 6]) = 0")
        assert (ex.fds[5].kind, ex.fds[6].kind) == ("pipe", "pipe")
        peer.sendall(b"s" * 100)
        time.sleep(0.02)
        ok(ex, "splice(4, NULL, 6, NULL, 99, 0) = 99")
        ok(ex, 'read(5, ..., 1000) = 99')
        ok(ex, "splice(4, NULL, 6, NULL, 1, SPLICE_F_NONBLOCK) = 1")
        peer.shutdown(socket.SHUT_WR)
        time.sleep(0.02)
        ok(ex, "splice(4, NULL, 6, NULL, 1, 0) = 0")  # the peer's FIN: end of file
        out = call(ex, "pipe([7, 5]) = 0")
        assert out.error == "duplicate fd 5 in script" and 7 not in ex.fds
        with pytest.raises(CallScriptError, match="3 pipe file descriptors instead of 2"):
            call(ex, "pipe([7, 8, 9]) = 0")


def test_open_and_sendfile(ex: Executor, tmp_path) -> None:
    path = tmp_path / "testfile"
    path.write_bytes(b"\0" * 5)
    peer = connected_pair(ex)
    with peer:
        ok(ex, f'open("{path}", O_RDONLY) = 5')
        assert ex.fds[5].kind == "file"
        ok(ex, "sendfile(4, 5, [0], 5) = 5")
        time.sleep(0.02)
        assert peer.recv(100) == b"\0" * 5
        ok(ex, "sendfile(4, 5, [5], 5) = 0")  # at the end of the file
        ok(ex, f'open("{tmp_path}/missing", O_RDONLY) = -1 ENOENT (No such file or directory)')
        ok(ex, "close(5) = 0")
        assert 5 not in ex.fds


def test_connect_af_unspec_and_sendto_af_unspec(ex: Executor) -> None:
    ok(ex, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")
    ok(ex, "connect(3, AF_UNSPEC, ...) = 0")  # a disconnect of an unconnected socket is fine
    ok(ex, "sendto(3, ..., 0, MSG_FASTOPEN, AF_UNSPEC, ...) = -1 EOPNOTSUPP (Operation not supported)")


def test_getsockname_getpeername(ex: Executor) -> None:
    peer = connected_pair(ex)
    with peer:
        port = peer.getsockname()[1]
        ok(ex, "getsockname(4, ..., ...) = 0")
        ok(ex, f'getpeername(4, {{sin_port=htons({port}), sin_addr=inet_addr("192.0.2.1")}}, ...) = 0')
        out = call(ex, f'getpeername(4, {{sin_port=htons({port + 1}), sin_addr=inet_addr("127.0.0.1")}}, ...) = 0')
        assert out.error == f"Bad getpeername address: expected: 127.0.0.1:{port + 1} actual: 127.0.0.1:{port}"


def test_bad_shapes_are_script_errors(ex: Executor) -> None:
    ok(ex, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")
    with pytest.raises(CallScriptError, match=r"Expected \.\.\. or NULL for buffer"):
        call(ex, "write(3, 5, 10) = 10")
    with pytest.raises(CallScriptError, match="Expected 3 args but got 2"):
        call(ex, "bind(3, ...) = 0")
    with pytest.raises(CallScriptError, match="fcntl expected 2-3 args but got 1"):
        call(ex, "fcntl(3) = 0")
    with pytest.raises(CallScriptError, match="a msghdr must be"):
        call(ex, "recvmsg(3, {foo=1}, 0) = 0")
    with pytest.raises(CallScriptError, match="Value out of range for 32-bit integer"):
        call(ex, "listen(3, 99999999999) = 0")


def test_struct_and_string_options(ex: Executor) -> None:
    ok(ex, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")
    ok(ex, 'setsockopt(3, SOL_TCP, TCP_MD5SIG, {tcpm_addr=..., tcpm_keylen=5, tcpm_key="hello"}, 216) = 0')
    # a key for a peer that does not exist cannot be deleted
    out = call(ex, 'setsockopt(3, SOL_TCP, TCP_MD5SIG, {tcpm_addr={sin_port=htons(0), '
                   'sin_addr=inet_addr("203.0.113.9")}, tcpm_keylen=0}, 216) = 0')
    assert out.error == "Expected result 0 but got -1 with errno 2 (No such file or directory)"
    key = "\\x01\\x02\\x03\\x04" * 4
    ok(ex, f'setsockopt(3, SOL_TCP, TCP_FASTOPEN_KEY, "{key}", 16) = 0')
    ok(ex, f'getsockopt(3, SOL_TCP, TCP_FASTOPEN_KEY, "{key}", [16]) = 0')
    ok(ex, 'setsockopt(3, SOL_TCP, TCP_FASTOPEN_KEY, "", 0) = -1 EINVAL (Invalid argument)')
    with pytest.raises(CallScriptError, match="unknown errno 'ENOTANERRNO'"):
        call(ex, "close(9) = -1 ENOTANERRNO (nope)")


def test_arguments_python_refuses_are_script_errors(ex: Executor) -> None:
    ok(ex, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")
    with pytest.raises(CallScriptError, match="recv: bad argument: negative buffersize"):
        call(ex, "recv(3, ..., -1, 0) = 0")


def test_accept_may_reuse_a_number_and_keeps_the_old_connection_open(ex: Executor) -> None:
    first = connected_pair(ex)
    old = ex.socks[4]
    second = socket.create_connection(ex.socks[3].getsockname()[:2])
    with first, second:
        ok(ex, "accept(3, ..., ...) = 4")  # packetdrill allows it: fd 4 is now the second connection
        assert ex.socks[4] is not old and old.fileno() >= 0
        ok(ex, "write(4, ..., 3) = 3")
        second.settimeout(2)
        assert second.recv(10) == b"\0\0\0"
        first.setblocking(False)
        with pytest.raises(BlockingIOError):
            first.recv(10)  # the first connection is neither written to nor closed
    ex.close_all()
    assert old.fileno() == -1
