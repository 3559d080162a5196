package batchtcp

// State is a connection state. The values are gVisor's tcp.EndpointState
// numbering (Linux's order for the RFC 9293 §3.3.2 states, then gVisor's
// pre-connection states), so Endpoint.State() reads the same as theirs.
type State uint32

// RFC 9293 §3.3.2 states, in Linux/gVisor numbering.
const (
	StateEstablished State = iota + 1
	StateSynSent
	StateSynRecv
	StateFinWait1
	StateFinWait2
	StateTimeWait
	StateClose
	StateCloseWait
	StateLastAck
	StateListen
	StateClosing
	// gVisor's states before a connection exists.
	StateInitial
	StateBound
	StateConnecting
	StateError
)

var stateNames = [...]string{
	StateEstablished: "ESTABLISHED",
	StateSynSent:     "SYN-SENT",
	StateSynRecv:     "SYN-RECEIVED",
	StateFinWait1:    "FIN-WAIT-1",
	StateFinWait2:    "FIN-WAIT-2",
	StateTimeWait:    "TIME-WAIT",
	StateClose:       "CLOSED",
	StateCloseWait:   "CLOSE-WAIT",
	StateLastAck:     "LAST-ACK",
	StateListen:      "LISTEN",
	StateClosing:     "CLOSING",
	StateInitial:     "INITIAL",
	StateBound:       "BOUND",
	StateConnecting:  "CONNECTING",
	StateError:       "ERROR",
}

func (s State) String() string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return "UNKNOWN"
}

// synchronized reports the RFC 9293 synchronized states (§3.5.2 group 3).
func (s State) synchronized() bool {
	switch s {
	case StateEstablished, StateFinWait1, StateFinWait2, StateCloseWait,
		StateClosing, StateLastAck, StateTimeWait:
		return true
	}
	return false
}

// connected reports states in which a connection has been established.
func (s State) connected() bool {
	return s.synchronized()
}
