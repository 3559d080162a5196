package adapter

import (
	"fmt"

	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/xdptcp/xdptcp/batchtcp"
)

func batchFactory(shards int) stack.TransportProtocolFactory {
	return batchtcp.Factory(batchtcp.Config{Shards: shards})
}

// batchLanes returns the shard count of the stack's batchtcp and a function
// that attaches a transmit batcher to it.
func batchLanes(s *stack.Stack) (int, func(batchtcp.TxBatcher), error) {
	p, ok := s.TransportProtocolInstance(header.TCPProtocolNumber).(*batchtcp.Protocol)
	if !ok {
		return 0, nil, fmt.Errorf("adapter: TCP protocol is not batchtcp")
	}
	return p.Shards(), p.AttachTxBatcher, nil
}
