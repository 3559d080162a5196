package netconn

import (
	"context"
	"errors"
	"os"
	"reflect"
	"syscall"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// One entry per tcpip.Error type in the pinned gVisor.
var errnoTable = []struct {
	err  tcpip.Error
	want syscall.Errno
}{
	{&tcpip.ErrConnectionRefused{}, syscall.ECONNREFUSED},
	{&tcpip.ErrConnectionReset{}, syscall.ECONNRESET},
	{&tcpip.ErrConnectionAborted{}, syscall.ECONNRESET},
	{&tcpip.ErrTimeout{}, syscall.ETIMEDOUT},
	{&tcpip.ErrPortInUse{}, syscall.EADDRINUSE},
	{&tcpip.ErrNetworkUnreachable{}, syscall.ENETUNREACH},
	{&tcpip.ErrHostUnreachable{}, syscall.EHOSTUNREACH},
	{&tcpip.ErrHostDown{}, syscall.EHOSTDOWN},
	{&tcpip.ErrNoNet{}, syscall.ENONET},
	{&tcpip.ErrClosedForSend{}, syscall.EPIPE},
	{&tcpip.ErrAborted{}, syscall.EPIPE},
	{&tcpip.ErrNotConnected{}, syscall.ENOTCONN},
	{&tcpip.ErrAlreadyConnected{}, syscall.EISCONN},
	{&tcpip.ErrAlreadyConnecting{}, syscall.EALREADY},
	{&tcpip.ErrConnectStarted{}, syscall.EINPROGRESS},
	{&tcpip.ErrWouldBlock{}, syscall.EAGAIN},
	{&tcpip.ErrNoPortAvailable{}, syscall.EAGAIN},
	{&tcpip.ErrBadLocalAddress{}, syscall.EADDRNOTAVAIL},
	{&tcpip.ErrDuplicateAddress{}, syscall.EEXIST},
	{&tcpip.ErrDuplicateNICID{}, syscall.EEXIST},
	{&tcpip.ErrUnknownNICID{}, syscall.ENODEV},
	{&tcpip.ErrInvalidNICID{}, syscall.ENODEV},
	{&tcpip.ErrUnknownDevice{}, syscall.ENODEV},
	{&tcpip.ErrUnknownProtocolOption{}, syscall.ENOPROTOOPT},
	{&tcpip.ErrAddressFamilyNotSupported{}, syscall.EAFNOSUPPORT},
	{&tcpip.ErrDestinationRequired{}, syscall.EDESTADDRREQ},
	{&tcpip.ErrNotSupported{}, syscall.EOPNOTSUPP},
	{&tcpip.ErrQueueSizeNotSupported{}, syscall.ENOTTY},
	{&tcpip.ErrNoSuchFile{}, syscall.ENOENT},
	{&tcpip.ErrBroadcastDisabled{}, syscall.EACCES},
	{&tcpip.ErrNotPermitted{}, syscall.EPERM},
	{&tcpip.ErrBadAddress{}, syscall.EFAULT},
	{&tcpip.ErrBadBuffer{}, syscall.EFAULT},
	{&tcpip.ErrMessageTooLong{}, syscall.EMSGSIZE},
	{&tcpip.ErrNoBufferSpace{}, syscall.ENOBUFS},
	{&tcpip.ErrEndpointBusy{}, syscall.EBUSY},
	{&tcpip.ErrUnknownProtocol{}, syscall.EINVAL},
	{&tcpip.ErrAlreadyBound{}, syscall.EINVAL},
	{&tcpip.ErrInvalidEndpointState{}, syscall.EINVAL},
	{&tcpip.ErrInvalidOptionValue{}, syscall.EINVAL},
	{&tcpip.ErrMalformedHeader{}, syscall.EINVAL},
	{&tcpip.ErrInvalidPortRange{}, syscall.EINVAL},
	{&tcpip.ErrMulticastInputCannotBeOutput{}, syscall.EINVAL},
	{&tcpip.ErrMissingRequiredFields{}, syscall.EINVAL},
	{&tcpip.ErrClosedForReceive{}, syscall.EIO}, // Read maps it to io.EOF first
}

func TestErrnoOf(t *testing.T) {
	for _, tc := range errnoTable {
		name := reflect.TypeOf(tc.err).Elem().Name()
		t.Run(name, func(t *testing.T) {
			if got := errnoOf(tc.err); got != tc.want {
				t.Errorf("errnoOf(%s) = %v, want %v", name, got, tc.want)
			}
			err := sysErr("connect", tc.err)
			if !errors.Is(err, tc.want) {
				t.Errorf("errors.Is(sysErr(%s), %v) = false", name, tc.want)
			}
			var se *os.SyscallError
			if !errors.As(err, &se) || se.Syscall != "connect" {
				t.Errorf("sysErr(%s) = %#v, want *os.SyscallError for connect", name, err)
			}
		})
	}
}

func TestCtxErr(t *testing.T) {
	to := ctxErr(context.DeadlineExceeded)
	if !errors.Is(to, context.DeadlineExceeded) || !errors.Is(to, os.ErrDeadlineExceeded) {
		t.Errorf("deadline error %v does not match context.DeadlineExceeded and os.ErrDeadlineExceeded", to)
	}
	if te, ok := to.(interface{ Timeout() bool }); !ok || !te.Timeout() {
		t.Errorf("deadline error %v is not a timeout", to)
	}
	if c := ctxErr(context.Canceled); !errors.Is(c, context.Canceled) || c.Error() != "operation was canceled" {
		t.Errorf("ctxErr(Canceled) = %v", c)
	}
}
