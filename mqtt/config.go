package mqtt

import (
	"errors"
	"fmt"
	"net"
)

// Sentinel errors of this package.
var (
	// ErrBadAddress is returned by Validate for a listen address that is not
	// empty (disabled) and not HOST:PORT.
	ErrBadAddress = errors.New("mqtt: listen address is not HOST:PORT")
	// ErrBadLimit is returned by Validate for a limit that is not positive.
	ErrBadLimit = errors.New("mqtt: limit out of range")
	// ErrListen is returned by Start when a listener cannot be opened (the
	// port is taken, say); it wraps the network error.
	ErrListen = errors.New("mqtt: cannot listen")
	// ErrNoState is returned by Start without the state machine or membership
	// to publish from.
	ErrNoState = errors.New("mqtt: no state to publish")
)

// Config configures the broker of a node. An empty Addr and WSAddr disable it.
type Config struct {
	// Addr is the TCP listener's HOST:PORT (Pioreactor's is 1883); empty disables it.
	Addr string
	// WSAddr is the WebSocket listener's HOST:PORT (Pioreactor's is 9001); empty disables it.
	WSAddr string
	// MaxClients bounds the clients connected at once; more are refused.
	MaxClients int64
	// MaxPacketSize bounds a packet, in bytes, either way.
	MaxPacketSize uint32
	// MaxTopicLength bounds a topic or filter a client publishes or subscribes to, in bytes.
	MaxTopicLength int
	// MaxPendingWrites bounds the messages queued to one slow client.
	MaxPendingWrites int32
	// MaxSessionExpiry bounds, in seconds, how long a disconnected client's session is kept.
	MaxSessionExpiry uint32
	// MaxCommands bounds the /set commands waiting to go through the API; more are dropped.
	MaxCommands int
}

// DefaultConfig is Pioreactor's ports and limits fit for a Raspberry Pi.
func DefaultConfig() Config {
	return Config{
		Addr: ":1883", WSAddr: ":9001",
		MaxClients: 256, MaxPacketSize: 64 << 10, MaxTopicLength: 256,
		MaxPendingWrites: 1024, MaxSessionExpiry: 3600, MaxCommands: 64,
	}
}

// Enabled reports whether any listener is configured.
func (c Config) Enabled() bool { return c.Addr != "" || c.WSAddr != "" }

// Validate checks the addresses and limits.
func (c Config) Validate() error {
	for _, a := range []struct{ name, v string }{{"mqtt.addr (--mqtt-addr)", c.Addr}, {"mqtt.ws_addr (--mqtt-ws-addr)", c.WSAddr}} {
		if a.v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return fmt.Errorf("%w: %s %q (e.g. :1883, or empty to disable): %v", ErrBadAddress, a.name, a.v, err)
		}
	}
	switch {
	case c.MaxClients < 1:
		return fmt.Errorf("%w: MaxClients is %d; it must be at least 1", ErrBadLimit, c.MaxClients)
	case c.MaxPacketSize < 1024:
		return fmt.Errorf("%w: MaxPacketSize is %d; it must be at least 1024 bytes", ErrBadLimit, c.MaxPacketSize)
	case c.MaxTopicLength < 64:
		return fmt.Errorf("%w: MaxTopicLength is %d; it must be at least 64 bytes", ErrBadLimit, c.MaxTopicLength)
	case c.MaxPendingWrites < 1:
		return fmt.Errorf("%w: MaxPendingWrites is %d; it must be at least 1", ErrBadLimit, c.MaxPendingWrites)
	case c.MaxCommands < 1:
		return fmt.Errorf("%w: MaxCommands is %d; it must be at least 1", ErrBadLimit, c.MaxCommands)
	}
	return nil
}
