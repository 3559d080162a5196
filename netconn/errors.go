package netconn

import (
	"context"
	"os"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// errnoOf is the one mapping from tcpip.Error to syscall.Errno. It follows
// Linux (and gVisor's pkg/syserr) except where noted. ErrClosedForReceive
// has no errno: Read turns it into io.EOF before calling this.
func errnoOf(err tcpip.Error) syscall.Errno {
	switch err.(type) {
	case *tcpip.ErrConnectionRefused:
		return syscall.ECONNREFUSED
	case *tcpip.ErrConnectionReset:
		return syscall.ECONNRESET
	case *tcpip.ErrConnectionAborted:
		// Linux reports an aborted established connection as ECONNRESET.
		return syscall.ECONNRESET
	case *tcpip.ErrTimeout:
		return syscall.ETIMEDOUT
	case *tcpip.ErrPortInUse:
		return syscall.EADDRINUSE
	case *tcpip.ErrNetworkUnreachable:
		return syscall.ENETUNREACH
	case *tcpip.ErrHostUnreachable:
		return syscall.EHOSTUNREACH
	case *tcpip.ErrHostDown:
		return syscall.EHOSTDOWN
	case *tcpip.ErrNoNet:
		return syscall.ENONET
	case *tcpip.ErrClosedForSend, *tcpip.ErrAborted:
		return syscall.EPIPE
	case *tcpip.ErrNotConnected:
		return syscall.ENOTCONN
	case *tcpip.ErrAlreadyConnected:
		return syscall.EISCONN
	case *tcpip.ErrAlreadyConnecting:
		return syscall.EALREADY
	case *tcpip.ErrConnectStarted:
		return syscall.EINPROGRESS
	case *tcpip.ErrWouldBlock, *tcpip.ErrNoPortAvailable:
		return syscall.EAGAIN
	case *tcpip.ErrBadLocalAddress:
		return syscall.EADDRNOTAVAIL
	case *tcpip.ErrDuplicateAddress, *tcpip.ErrDuplicateNICID:
		return syscall.EEXIST
	case *tcpip.ErrUnknownNICID, *tcpip.ErrInvalidNICID, *tcpip.ErrUnknownDevice:
		return syscall.ENODEV
	case *tcpip.ErrUnknownProtocolOption:
		return syscall.ENOPROTOOPT
	case *tcpip.ErrAddressFamilyNotSupported:
		return syscall.EAFNOSUPPORT
	case *tcpip.ErrDestinationRequired:
		return syscall.EDESTADDRREQ
	case *tcpip.ErrNotSupported:
		return syscall.EOPNOTSUPP
	case *tcpip.ErrQueueSizeNotSupported:
		return syscall.ENOTTY
	case *tcpip.ErrNoSuchFile:
		return syscall.ENOENT
	case *tcpip.ErrBroadcastDisabled:
		return syscall.EACCES
	case *tcpip.ErrNotPermitted:
		return syscall.EPERM
	case *tcpip.ErrBadAddress, *tcpip.ErrBadBuffer:
		return syscall.EFAULT
	case *tcpip.ErrMessageTooLong:
		return syscall.EMSGSIZE
	case *tcpip.ErrNoBufferSpace:
		return syscall.ENOBUFS
	case *tcpip.ErrEndpointBusy:
		return syscall.EBUSY
	case *tcpip.ErrUnknownProtocol, *tcpip.ErrAlreadyBound,
		*tcpip.ErrInvalidEndpointState, *tcpip.ErrInvalidOptionValue,
		*tcpip.ErrMalformedHeader, *tcpip.ErrInvalidPortRange,
		*tcpip.ErrMulticastInputCannotBeOutput, *tcpip.ErrMissingRequiredFields:
		return syscall.EINVAL
	default:
		// An error type added to gVisor after this table was written.
		return syscall.EIO
	}
}

// sysErr converts err to the *os.SyscallError that package net would
// return from the named system call (connect, read, write, ...).
func sysErr(syscallName string, err tcpip.Error) error {
	return os.NewSyscallError(syscallName, errnoOf(err))
}

// timeoutError is net's "i/o timeout" for a dial whose context deadline
// passed: it matches both context.DeadlineExceeded (as net's does) and
// os.ErrDeadlineExceeded.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
func (timeoutError) Is(err error) bool {
	return err == context.DeadlineExceeded || err == os.ErrDeadlineExceeded
}

// canceledError is net's error for a dial whose context was canceled.
type canceledError struct{}

func (canceledError) Error() string     { return "operation was canceled" }
func (canceledError) Is(err error) bool { return err == context.Canceled }

// ctxErr maps a context error the way package net does.
func ctxErr(err error) error {
	switch err {
	case context.DeadlineExceeded:
		return timeoutError{}
	case context.Canceled:
		return canceledError{}
	}
	return err
}
