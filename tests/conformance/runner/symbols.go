package runner

import (
	"gvisor.dev/gvisor/pkg/tcpip"
)

// symbols are the script constants, with Linux values (PACKETDRILL.md §6).
var symbols = map[string]int64{
	"NULL": 0,
	// Families, types, protocols, levels.
	"AF_INET": 2, "AF_INET6": 10, "PF_INET": 2, "PF_INET6": 10,
	"SOCK_STREAM": 1, "SOCK_DGRAM": 2, "SOCK_NONBLOCK": 0x800,
	"IPPROTO_IP": 0, "IPPROTO_TCP": 6, "IPPROTO_UDP": 17, "IPPROTO_IPV6": 41,
	"SOL_SOCKET": 1, "SOL_TCP": 6, "SOL_IP": 0, "SOL_IPV6": 41,
	// SOL_SOCKET options.
	"SO_DEBUG": 1, "SO_REUSEADDR": 2, "SO_TYPE": 3, "SO_ERROR": 4, "SO_DONTROUTE": 5,
	"SO_BROADCAST": 6, "SO_SNDBUF": 7, "SO_RCVBUF": 8, "SO_KEEPALIVE": 9, "SO_OOBINLINE": 10,
	"SO_LINGER": 13, "SO_REUSEPORT": 15, "SO_RCVLOWAT": 18, "SO_SNDLOWAT": 19,
	"SO_RCVTIMEO": 20, "SO_SNDTIMEO": 21, "SO_ACCEPTCONN": 30,
	// IPPROTO_TCP options.
	"TCP_NODELAY": 1, "TCP_MAXSEG": 2, "TCP_CORK": 3, "TCP_KEEPIDLE": 4, "TCP_KEEPINTVL": 5,
	"TCP_KEEPCNT": 6, "TCP_SYNCNT": 7, "TCP_LINGER2": 8, "TCP_DEFER_ACCEPT": 9,
	"TCP_WINDOW_CLAMP": 10, "TCP_INFO": 11, "TCP_QUICKACK": 12, "TCP_CONGESTION": 13,
	"TCP_USER_TIMEOUT": 18, "TCP_NOTSENT_LOWAT": 25,
	// IP options.
	"IP_TOS": 1, "IP_TTL": 2, "IPV6_TCLASS": 67, "IPV6_UNICAST_HOPS": 16, "IPV6_V6ONLY": 26,
	// fcntl.
	"F_GETFL": 3, "F_SETFL": 4, "O_RDONLY": 0, "O_WRONLY": 1, "O_RDWR": 2, "O_NONBLOCK": 0x800,
	// shutdown.
	"SHUT_RD": 0, "SHUT_WR": 1, "SHUT_RDWR": 2,
	// send/recv flags.
	"MSG_OOB": 1, "MSG_PEEK": 2, "MSG_DONTROUTE": 4, "MSG_TRUNC": 0x20, "MSG_DONTWAIT": 0x40,
	"MSG_EOR": 0x80, "MSG_WAITALL": 0x100, "MSG_NOSIGNAL": 0x4000, "MSG_MORE": 0x8000,
	// poll.
	"POLLIN": 0x1, "POLLPRI": 0x2, "POLLOUT": 0x4, "POLLERR": 0x8, "POLLHUP": 0x10,
	"POLLNVAL": 0x20, "POLLRDNORM": 0x40, "POLLRDBAND": 0x80, "POLLWRNORM": 0x100,
	"POLLWRBAND": 0x200, "POLLRDHUP": 0x2000,
	// ioctl.
	"SIOCINQ": 0x541B, "FIONREAD": 0x541B, "SIOCOUTQ": 0x5411, "TIOCOUTQ": 0x5411,
	// TCP states (tcpi_state; Linux numbering = tcp.EndpointState numbering).
	"TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_SYN_RECV": 3, "TCP_FIN_WAIT1": 4,
	"TCP_FIN_WAIT2": 5, "TCP_TIME_WAIT": 6, "TCP_CLOSE": 7, "TCP_CLOSE_WAIT": 8,
	"TCP_LAST_ACK": 9, "TCP_LISTEN": 10, "TCP_CLOSING": 11,
	// tcpi_ca_state.
	"TCP_CA_Open": 0, "TCP_CA_Disorder": 1, "TCP_CA_CWR": 2, "TCP_CA_Recovery": 3, "TCP_CA_Loss": 4,
}

// errnos are Linux errno values by name.
var errnos = map[string]int64{
	"EPERM": 1, "ENOENT": 2, "EINTR": 4, "EIO": 5, "EBADF": 9, "EAGAIN": 11, "EWOULDBLOCK": 11,
	"ENOMEM": 12, "EACCES": 13, "EFAULT": 14, "EBUSY": 16, "EEXIST": 17, "EINVAL": 22,
	"ENFILE": 23, "EMFILE": 24, "ENOSPC": 28, "EPIPE": 32, "ENOTSOCK": 88, "EDESTADDRREQ": 89,
	"EMSGSIZE": 90, "EPROTOTYPE": 91, "ENOPROTOOPT": 92, "EPROTONOSUPPORT": 93,
	"EOPNOTSUPP": 95, "ENOTSUP": 95, "EAFNOSUPPORT": 97, "EADDRINUSE": 98, "EADDRNOTAVAIL": 99,
	"ENETDOWN": 100, "ENETUNREACH": 101, "ECONNABORTED": 103, "ECONNRESET": 104,
	"ENOBUFS": 105, "EISCONN": 106, "ENOTCONN": 107, "ESHUTDOWN": 108, "ETIMEDOUT": 110,
	"ECONNREFUSED": 111, "EHOSTUNREACH": 113, "EALREADY": 114, "EINPROGRESS": 115,
}

// errnoName returns the canonical name of a Linux errno value.
func errnoName(v int64) string {
	if v == 0 {
		return "0"
	}
	if v == 11 {
		return "EAGAIN"
	}
	if v == 95 {
		return "EOPNOTSUPP"
	}
	for k, x := range errnos {
		if x == v {
			return k
		}
	}
	return "E?"
}

// canonErrno folds aliases.
func canonErrno(s string) string {
	switch s {
	case "EWOULDBLOCK":
		return "EAGAIN"
	case "ENOTSUP":
		return "EOPNOTSUPP"
	}
	return s
}

// errnoOf maps a tcpip.Error to the errno a Linux socket call returns.
func errnoOf(err tcpip.Error) string {
	switch err.(type) {
	case *tcpip.ErrWouldBlock:
		return "EAGAIN"
	case *tcpip.ErrConnectStarted:
		return "EINPROGRESS"
	case *tcpip.ErrAlreadyConnecting:
		return "EALREADY"
	case *tcpip.ErrAlreadyConnected:
		return "EISCONN"
	case *tcpip.ErrNotConnected:
		return "ENOTCONN"
	case *tcpip.ErrConnectionRefused:
		return "ECONNREFUSED"
	case *tcpip.ErrConnectionReset:
		return "ECONNRESET"
	case *tcpip.ErrConnectionAborted:
		return "ECONNABORTED"
	case *tcpip.ErrTimeout:
		return "ETIMEDOUT"
	case *tcpip.ErrClosedForSend:
		return "EPIPE"
	case *tcpip.ErrPortInUse, *tcpip.ErrDuplicateAddress:
		return "EADDRINUSE"
	case *tcpip.ErrBadLocalAddress:
		return "EADDRNOTAVAIL"
	case *tcpip.ErrInvalidEndpointState, *tcpip.ErrInvalidOptionValue, *tcpip.ErrAlreadyBound:
		return "EINVAL"
	case *tcpip.ErrUnknownProtocolOption:
		return "ENOPROTOOPT"
	case *tcpip.ErrNetworkUnreachable:
		return "ENETUNREACH"
	case *tcpip.ErrHostUnreachable:
		return "EHOSTUNREACH"
	case *tcpip.ErrNoBufferSpace:
		return "ENOBUFS"
	case *tcpip.ErrMessageTooLong:
		return "EMSGSIZE"
	case *tcpip.ErrNotSupported, *tcpip.ErrQueueSizeNotSupported:
		return "EOPNOTSUPP"
	case *tcpip.ErrAddressFamilyNotSupported:
		return "EAFNOSUPPORT"
	case *tcpip.ErrDestinationRequired:
		return "EDESTADDRREQ"
	case *tcpip.ErrBadAddress:
		return "EFAULT"
	case *tcpip.ErrNotPermitted:
		return "EPERM"
	case *tcpip.ErrAborted:
		return "EPIPE"
	case *tcpip.ErrUnknownProtocol:
		return "EPROTONOSUPPORT"
	case *tcpip.ErrBadBuffer:
		return "EFAULT"
	}
	return "EIO"
}
